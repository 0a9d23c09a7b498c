"""The message catalogue: every user-facing reply, in pt-BR (fallback) and en."""

from __future__ import annotations

DEFAULT_LANGUAGE = "pt-BR"

CATALOGUE: dict[str, dict[str, str]] = {
    "welcome": {
        "pt-BR": "👋 Olá! Eu sou @{username}. Como posso ajudar?",
        "en": "👋 Hi! I am @{username}. How can I help?",
    },
    "rate_limited": {
        "pt-BR": "⏳ Muitos comandos em pouco tempo. Aguarde {seconds} segundos.",
        "en": "⏳ Too many commands in a short time. Wait {seconds} seconds.",
    },
    "cooldown": {
        "pt-BR": "⏸️ Processando sua solicitação anterior...",
        "en": "⏸️ Processing your previous request...",
    },
    "locked": {
        "pt-BR": "🔒 Operação em andamento. Aguarde.",
        "en": "🔒 Operation in progress. Please wait.",
    },
    "callback_invalid": {
        "pt-BR": "⚠️ Essa ação não é válida mais.",
        "en": "⚠️ This action is no longer valid.",
    },
    "api_unavailable": {
        "pt-BR": "🚧 Serviço externo indisponível no momento. Tente novamente em alguns minutos.",
        "en": "🚧 The external service is unavailable right now. Try again in a few minutes.",
    },
    "api_failed": {
        "pt-BR": "⚠️ Não foi possível obter a resposta do serviço externo. Tente novamente mais tarde.",
        "en": "⚠️ Could not get an answer from the external service. Try again later.",
    },
    "api_empty": {
        "pt-BR": "✅ Feito (o serviço não retornou texto).",
        "en": "✅ Done (the service returned no text).",
    },
    "secret_saved": {
        "pt-BR": "✅ Dado sensível salvo com segurança.",
        "en": "✅ Sensitive data stored securely.",
    },
    # -- the manager bot (HTML parse mode: its values are escaped by the renderer, the texts are valid HTML) --
    "mgr_help": {
        "pt-BR": (
            "🤖 <b>Gerenciador de bots</b>\n"
            "Eu registro e administro os seus bots do Telegram.\n\n"
            "/addbot [token] — registrar um bot criado no @BotFather (a mensagem com o token é apagada)\n"
            "/newbot — criar um bot novo aqui mesmo, sem colar token\n"
            "/mybots — seus bots: detalhes, ativar/desativar, novo segredo, apagar, estatísticas\n"
            "/setwelcome @bot texto — texto de boas-vindas do /start\n"
            "/setcommand @bot /comando resposta — comando com resposta fixa\n"
            "/setapi @bot /comando URL [GET|POST] [timeout] — comando que chama uma API externa\n"
            "/delcommand @bot /comando — remover um comando\n"
            "/maintenance @bot texto — modo manutenção: os usuários recebem o texto (off para sair)\n"
            "/block @bot id [1h] · /unblock @bot id — bloquear um usuário por um tempo\n"
            "/limits @bot — limites por usuário (ex.: /limits @bot /start 5/1m)\n"
            "/captcha @bot on|off|auto — desafio para usuários novos (auto: sob ataque)\n"
            "/subscribers @bot — assinantes: ativos, que bloquearam o bot, bloqueados por você, novos\n"
            "/broadcast @bot — enviar uma mensagem a todos os assinantes ativos (prévia e confirmação)\n"
            "/inbox @bot on|off — caixa de entrada: as mensagens dos usuários chegam a você, responda para responder\n"
            "/invite @bot — convidar alguém para administrar o bot (link de uso único) · /admins @bot — admins\n"
            "/join código — aceitar um convite · /leave @bot — deixar de administrar um bot\n"
            "/cancel — cancelar a operação em andamento"
        ),
        "en": (
            "🤖 <b>Bot manager</b>\n"
            "I register and run your Telegram bots.\n\n"
            "/addbot [token] — register a bot made in @BotFather (the message holding the token is deleted)\n"
            "/newbot — create a new bot right here, no token to paste\n"
            "/mybots — your bots: details, enable/disable, new secret, delete, stats\n"
            "/setwelcome @bot text — the welcome text for /start\n"
            "/setcommand @bot /command reply — a command with a fixed reply\n"
            "/setapi @bot /command URL [GET|POST] [timeout] — a command that calls an external API\n"
            "/delcommand @bot /command — remove a command\n"
            "/maintenance @bot text — maintenance mode: users get the text (off to leave it)\n"
            "/block @bot id [1h] · /unblock @bot id — block a user for a while\n"
            "/limits @bot — per-user limits (e.g. /limits @bot /start 5/1m)\n"
            "/inbox @bot on|off — inbox: users' messages come to you, reply to answer them\n"
            "/captcha @bot on|off|auto — a challenge for new users (auto: under attack)\n"
            "/subscribers @bot — subscribers: active, who blocked the bot, blocked by you, new\n"
            "/broadcast @bot — send a message to every active subscriber (preview and confirmation)\n"
            "/invite @bot — invite someone to run the bot with you (one-time link) · /admins @bot — its admins\n"
            "/join code — accept an invite · /leave @bot — stop administering a bot\n"
            "/cancel — cancel the current operation"
        ),
    },
    "mgr_not_allowed": {
        "pt-BR": "⛔ Você não tem permissão para administrar bots aqui.",
        "en": "⛔ You are not allowed to manage bots here.",
    },
    "mgr_send_token": {
        "pt-BR": "🔑 Envie o token do bot (do @BotFather). Vou apagar a mensagem assim que recebê-la.",
        "en": "🔑 Send the bot's token (from @BotFather). I will delete the message as soon as I get it.",
    },
    "mgr_new_bot": {
        "pt-BR": "🆕 Toque no botão abaixo para criar um bot novo; eu cuido do resto.",
        "en": "🆕 Tap the button below to create a new bot; I will take care of the rest.",
    },
    "mgr_invalid_token": {
        "pt-BR": "❌ Isso não é um token de bot válido. O formato é <code>123456789:AA…</code> (do @BotFather).",
        "en": "❌ That is not a valid bot token. The format is <code>123456789:AA…</code> (from @BotFather).",
    },
    "mgr_token_rejected": {
        "pt-BR": "❌ O Telegram recusou esse token: ele foi revogado ou não existe. Gere um novo no @BotFather.",
        "en": "❌ Telegram rejected that token: it was revoked or never existed. Get a new one from @BotFather.",
    },
    "mgr_owned_by_other": {
        "pt-BR": "⛔ Esse bot já está registrado por outra pessoa e não pode ser adicionado.",
        "en": "⛔ That bot is already registered by someone else and cannot be added.",
    },
    "mgr_registered": {
        "pt-BR": "🤖 @{username} está ativo. Use /mybots para administrá-lo.",
        "en": "🤖 @{username} is active. Use /mybots to manage it.",
    },
    "mgr_refreshed": {
        "pt-BR": "🔄 @{username} já era seu: token e segredo do webhook foram renovados.",
        "en": "🔄 @{username} was already yours: its token and webhook secret were refreshed.",
    },
    "mgr_token_removed": {
        "pt-BR": "🧹 Apaguei sua mensagem porque ela continha um token.",
        "en": "🧹 I deleted your message because it held a token.",
    },
    "mgr_unavailable": {
        "pt-BR": "⚠️ Não consegui concluir agora. Tente de novo em instantes.",
        "en": "⚠️ I could not finish that now. Please try again in a moment.",
    },
    "mgr_no_bots": {
        "pt-BR": "Você ainda não tem bots. Use /addbot ou /newbot.",
        "en": "You have no bots yet. Use /addbot or /newbot.",
    },
    "mgr_bots_header": {
        "pt-BR": "🤖 <b>Seus bots</b>",
        "en": "🤖 <b>Your bots</b>",
    },
    "mgr_bot_line": {
        "pt-BR": "• @{username} — {status}",
        "en": "• @{username} — {status}",
    },
    "mgr_details": {
        "pt-BR": "🤖 <b>@{username}</b>\nStatus: {status}\nBoas-vindas: {welcome}\nComandos: {commands}",
        "en": "🤖 <b>@{username}</b>\nStatus: {status}\nWelcome: {welcome}\nCommands: {commands}",
    },
    "mgr_none": {"pt-BR": "(nenhum)", "en": "(none)"},
    "mgr_default_welcome": {"pt-BR": "(padrão)", "en": "(default)"},
    "mgr_stats": {
        "pt-BR": "📊 <b>@{username}</b>\n👥 Usuários: {users_total}\n👤 Usuários hoje: {users_today}\n"
        "💬 Mensagens hoje: {messages_today}",
        "en": "📊 <b>@{username}</b>\n👥 Users: {users_total}\n👤 Users today: {users_today}\n"
        "💬 Messages today: {messages_today}",
    },
    "status_active": {"pt-BR": "✅ ativo", "en": "✅ active"},
    "status_disabled": {"pt-BR": "⏸️ desativado", "en": "⏸️ disabled"},
    "status_pending": {"pt-BR": "⏳ pendente", "en": "⏳ pending"},
    "status_failed": {"pt-BR": "❌ falhou", "en": "❌ failed"},
    "status_deleted": {"pt-BR": "🗑️ apagado", "en": "🗑️ deleted"},
    "mgr_disabled": {
        "pt-BR": "⏸️ @{username} foi desativado: não responde mais até ser ativado.",
        "en": "⏸️ @{username} is disabled: it will not answer until enabled again.",
    },
    "mgr_enabled": {
        "pt-BR": "▶️ @{username} está ativo de novo.",
        "en": "▶️ @{username} is active again.",
    },
    "mgr_rotated": {
        "pt-BR": "🔑 Novo segredo de webhook configurado para @{username}.",
        "en": "🔑 A new webhook secret is set for @{username}.",
    },
    "mgr_delete_confirm": {
        "pt-BR": "🗑️ Apagar @{username}? O webhook será removido e o bot deixará de responder.",
        "en": "🗑️ Delete @{username}? Its webhook is removed and the bot stops answering.",
    },
    "mgr_deleted": {
        "pt-BR": "🗑️ @{username} foi apagado.",
        "en": "🗑️ @{username} was deleted.",
    },
    "mgr_cancelled": {
        "pt-BR": "👌 Cancelado.",
        "en": "👌 Cancelled.",
    },
    "mgr_session_expired": {
        "pt-BR": "🔐 Sua sessão de admin expirou. Confirme que é você para continuar com: {action}.",
        "en": "🔐 Your admin session expired. Confirm it is you to go on with: {action}.",
    },
    "mgr_bot_not_found": {
        "pt-BR": "❓ Bot não encontrado entre os seus. Veja /mybots.",
        "en": "❓ No such bot among yours. See /mybots.",
    },
    "mgr_illegal_move": {
        "pt-BR": "⚠️ Não é possível: @{username} está {status}.",
        "en": "⚠️ Not possible: @{username} is {status}.",
    },
    "mgr_welcome_set": {
        "pt-BR": "✅ Boas-vindas de @{username} atualizadas.",
        "en": "✅ @{username}'s welcome text is updated.",
    },
    "mgr_command_set": {
        "pt-BR": "✅ @{username} agora responde a {command}.",
        "en": "✅ @{username} now answers {command}.",
    },
    "mgr_maintenance_on": {
        "pt-BR": (
            "🛠 @{username} está em manutenção: cada usuário recebe a sua mensagem (no máximo uma vez por minuto) "
            "em vez das respostas normais. Para sair: /maintenance @{username} off"
        ),
        "en": (
            "🛠 @{username} is in maintenance: each user gets your text (at most once a minute) instead of the "
            "usual answers. To leave it: /maintenance @{username} off"
        ),
    },
    "mgr_maintenance_off": {
        "pt-BR": "✅ @{username} saiu da manutenção: as respostas normais voltaram.",
        "en": "✅ @{username} left maintenance: the usual answers are back.",
    },
    "mgr_user_blocked": {
        "pt-BR": "🚫 Usuário {user_id} bloqueado em @{username} por {duration}: as mensagens dele são ignoradas.",
        "en": "🚫 User {user_id} is blocked on @{username} for {duration}: their messages are ignored.",
    },
    "mgr_user_unblocked": {
        "pt-BR": "✅ Usuário {user_id} desbloqueado em @{username}.",
        "en": "✅ User {user_id} is unblocked on @{username}.",
    },
    "mgr_command_removed": {
        "pt-BR": "✅ {command} removido de @{username}.",
        "en": "✅ {command} removed from @{username}.",
    },
    "mgr_invalid_setting": {
        "pt-BR": "❌ Valor inválido: {reason}",
        "en": "❌ Invalid value: {reason}",
    },
    "mgr_usage": {
        "pt-BR": "ℹ️ Uso: {usage}",
        "en": "ℹ️ Usage: {usage}",
    },
    "mgr_ask_welcome": {
        "pt-BR": "✏️ Envie o novo texto de boas-vindas de @{username}.",
        "en": "✏️ Send the new welcome text for @{username}.",
    },
    "mgr_ask_command": {
        "pt-BR": "➕ Envie o comando e a resposta de @{username}: <code>/comando resposta</code>",
        "en": "➕ Send @{username}'s command and reply: <code>/command reply</code>",
    },
    "mgr_ask_api": {
        "pt-BR": "🌐 Envie o comando de API de @{username}: <code>/comando URL [GET|POST] [timeout]</code>",
        "en": "🌐 Send @{username}'s API command: <code>/command URL [GET|POST] [timeout]</code>",
    },
    "mgr_unknown": {
        "pt-BR": "🤔 Não entendi. Veja /help.",
        "en": "🤔 I did not understand. See /help.",
    },
    "mgr_delete_token_yourself": {
        "pt-BR": "⚠️ Não consegui apagar a mensagem com o token. Apague-a você mesmo e, por segurança, "
        "gere um token novo no @BotFather (/revoke).",
        "en": "⚠️ I could not delete the message holding the token. Delete it yourself and, to be safe, "
        "revoke the token in @BotFather (/revoke).",
    },
    "mgr_page": {"pt-BR": "Página {page} de {pages}", "en": "Page {page} of {pages}"},
    "btn_prev_page": {"pt-BR": "⬅️ Anterior", "en": "⬅️ Previous"},
    "btn_next_page": {"pt-BR": "Próxima ➡️", "en": "Next ➡️"},
    "usage_setwelcome": {"pt-BR": "/setwelcome @bot texto", "en": "/setwelcome @bot text"},
    "captcha_challenge": {
        "pt-BR": "🤖 Antes de continuar, prove que você é uma pessoa: toque no {emoji}.",
        "en": "🤖 Before we go on, show you are a person: tap the {emoji}.",
    },
    "captcha_wrong": {
        "pt-BR": "❌ Não foi esse. Tentativas restantes: {left}.",
        "en": "❌ Not that one. Attempts left: {left}.",
    },
    "captcha_locked": {
        "pt-BR": "⏳ Muitas tentativas. Tente de novo em {minutes} min.",
        "en": "⏳ Too many attempts. Try again in {minutes} min.",
    },
    "captcha_passed": {
        "pt-BR": "✅ Obrigado! Pode usar o bot: envie /start.",
        "en": "✅ Thank you! Go ahead: send /start.",
    },
    "captcha_pass_notice": {"pt-BR": "✅", "en": "✅"},
    "captcha_expired": {
        "pt-BR": "⌛ Esse desafio expirou: envie uma mensagem para receber outro.",
        "en": "⌛ That challenge expired: send a message to get a new one.",
    },
    "usage_subscribers": {"pt-BR": "/subscribers @bot", "en": "/subscribers @bot"},
    "mgr_subscribers": {
        "pt-BR": "👥 <b>Assinantes de @{username}</b>: {total}\n✅ Ativos: {active}\n"
        "🚫 Bloquearam o bot: {blocked_bot}\n⛔ Bloqueados por você: {blocked_by_admin}\n"
        "🆕 Novos hoje: {new_today}\n📅 Novos em 7 dias: {new_7_days}",
        "en": "👥 <b>Subscribers of @{username}</b>: {total}\n✅ Active: {active}\n"
        "🚫 Blocked the bot: {blocked_bot}\n⛔ Blocked by you: {blocked_by_admin}\n"
        "🆕 New today: {new_today}\n📅 New in 7 days: {new_7_days}",
    },
    "btn_export_csv": {"pt-BR": "📥 Exportar CSV", "en": "📥 Export CSV"},
    "mgr_subscribers_csv": {
        "pt-BR": "📄 Assinantes de @{username}: {count}.",
        "en": "📄 Subscribers of @{username}: {count}.",
    },
    "mgr_subscribers_csv_truncated": {
        "pt-BR": "📄 Assinantes de @{username}: os primeiros {count} (o limite de uma exportação).",
        "en": "📄 Subscribers of @{username}: the first {count} (the limit of one export).",
    },
    "mgr_no_subscribers": {
        "pt-BR": "👥 @{username} ainda não tem assinantes.",
        "en": "👥 @{username} has no subscribers yet.",
    },
    "usage_captcha": {"pt-BR": "/captcha @bot on | off | auto", "en": "/captcha @bot on | off | auto"},
    "mgr_captcha": {
        "pt-BR": "🤖 CAPTCHA de @{username}: {mode}.",
        "en": "🤖 CAPTCHA of @{username}: {mode}.",
    },
    "captcha_mode_on": {
        "pt-BR": "ligado (todo usuário novo responde antes de ser atendido)",
        "en": "on (every new user answers before being served)",
    },
    "captcha_mode_off": {"pt-BR": "desligado", "en": "off"},
    "captcha_mode_auto": {
        "pt-BR": "automático (ligado enquanto o bot estiver sob ataque de usuários novos)",
        "en": "automatic (on while the bot is under attack by new users)",
    },
    "usage_limits": {
        "pt-BR": "/limits @bot [/comando 5/1m | /comando cooldown 10s | /comando off | reset]",
        "en": "/limits @bot [/command 5/1m | /command cooldown 10s | /command off | reset]",
    },
    "mgr_limits": {
        "pt-BR": (
            "⚙️ <b>Limites de @{username}</b> (por usuário)\n{limits}\n\n"
            "As outras ações seguem o padrão do serviço. Mudar: /limits @{username} /start 5/1m · "
            "/limits @{username} /start cooldown 10s · /limits @{username} /start off · /limits @{username} reset"
        ),
        "en": (
            "⚙️ <b>Limits of @{username}</b> (per user)\n{limits}\n\n"
            "Other actions follow the service's defaults. Change: /limits @{username} /start 5/1m · "
            "/limits @{username} /start cooldown 10s · /limits @{username} /start off · /limits @{username} reset"
        ),
    },
    "limits_none": {
        "pt-BR": "Nenhum limite próprio: vale o padrão do serviço.",
        "en": "No limits of its own: the service's defaults apply.",
    },
    "limits_line": {"pt-BR": "• <code>{action}</code> — {rules}", "en": "• <code>{action}</code> — {rules}"},
    "limits_rate": {"pt-BR": "{limit} a cada {window}", "en": "{limit} per {window}"},
    "limits_cooldown": {"pt-BR": "espera de {seconds}", "en": "{seconds} between two"},
    "usage_block": {"pt-BR": "/block @bot id_do_usuário [30m|1h|2d]", "en": "/block @bot user_id [30m|1h|2d]"},
    "usage_unblock": {"pt-BR": "/unblock @bot id_do_usuário", "en": "/unblock @bot user_id"},
    "usage_maintenance": {"pt-BR": "/maintenance @bot texto | off", "en": "/maintenance @bot text | off"},
    "usage_setcommand": {"pt-BR": "/setcommand @bot /comando resposta", "en": "/setcommand @bot /command reply"},
    "usage_setapi": {
        "pt-BR": "/setapi @bot /comando https://… [GET|POST] [timeout]",
        "en": "/setapi @bot /command https://… [GET|POST] [timeout]",
    },
    "usage_delcommand": {"pt-BR": "/delcommand @bot /comando", "en": "/delcommand @bot /command"},
    "usage_command_answer": {"pt-BR": "/comando resposta", "en": "/command reply"},
    "usage_api_answer": {
        "pt-BR": "/comando https://… [GET|POST] [timeout]",
        "en": "/command https://… [GET|POST] [timeout]",
    },
    # InvalidSetting reason codes (src/tgm/domain/administration/setting_rules.SETTING_REASON_CODES) → text.
    "setting_invalid": {
        "pt-BR": "confira o valor (URL http(s) sem espaços nem credenciais, método GET ou POST, timeout 0.5-30 s).",
        "en": "check the value (an http(s) URL without spaces or credentials, GET or POST, timeout 0.5-30 s).",
    },
    "setting_command_name": {
        "pt-BR": "um comando é / seguido de 1 a 32 letras minúsculas, dígitos ou _.",
        "en": "a command is / followed by 1-32 lowercase letters, digits or _.",
    },
    "setting_command_reserved": {
        "pt-BR": "/start é o texto de boas-vindas; use /setwelcome.",
        "en": "/start is the welcome text; use /setwelcome.",
    },
    "setting_text_empty": {"pt-BR": "o texto está vazio.", "en": "the text is empty."},
    "setting_text_too_long": {
        "pt-BR": "o texto passa de 4096 caracteres.",
        "en": "the text is longer than 4096 characters.",
    },
    "setting_url_invalid": {
        "pt-BR": "a URL está vazia, é longa demais, tem espaços ou não é http(s).",
        "en": "the URL is empty, too long, holds spaces or is not http(s).",
    },
    "setting_url_unparsable": {"pt-BR": "a URL não pôde ser lida.", "en": "the URL cannot be parsed."},
    "setting_url_scheme": {
        "pt-BR": "só aceito URLs http:// e https://.",
        "en": "only http:// and https:// URLs are accepted.",
    },
    "setting_url_credentials": {
        "pt-BR": "URLs com usuário ou senha não são aceitas.",
        "en": "URLs with a user or password are not accepted.",
    },
    "setting_method": {"pt-BR": "o método é GET ou POST.", "en": "the method is GET or POST."},
    "setting_timeout": {
        "pt-BR": "o timeout é de 0.5 a 30 segundos.",
        "en": "the timeout is 0.5-30 seconds.",
    },
    "setting_too_many_commands": {
        "pt-BR": "no máximo 50 comandos por bot.",
        "en": "at most 50 commands per bot.",
    },
    "setting_command_unknown": {
        "pt-BR": "esse comando não está configurado.",
        "en": "that command is not configured.",
    },
    "setting_block_user": {
        "pt-BR": "o usuário é o número (id) do Telegram.",
        "en": "the user is their Telegram number (id).",
    },
    "setting_block_duration": {
        "pt-BR": "um bloqueio dura de 1 minuto a 30 dias (ex.: 30m, 1h, 2d).",
        "en": "a block lasts from 1 minute to 30 days (e.g. 30m, 1h, 2d).",
    },
    "setting_limit_action": {
        "pt-BR": "a ação é um /comando, msg, cmd:*, cb:*, cb:ação_do_botão ou default.",
        "en": "the action is a /command, msg, cmd:*, cb:*, cb:button_action or default.",
    },
    "setting_limit_value": {
        "pt-BR": "um limite vai de 1 a 10000 por 1s a 1d; uma espera, de 1s a 1d (ex.: 5/1m, cooldown 10s).",
        "en": "a limit is 1 to 10000 per 1s to 1d; a cooldown 1s to 1d (e.g. 5/1m, cooldown 10s).",
    },
    "setting_captcha_mode": {
        "pt-BR": "o CAPTCHA é on, off ou auto.",
        "en": "the CAPTCHA is on, off or auto.",
    },
    "setting_too_many_limits": {
        "pt-BR": "no máximo 50 limites e esperas por bot.",
        "en": "at most 50 limits and cooldowns per bot.",
    },
    "setting_too_many_blocks": {
        "pt-BR": "no máximo 1000 usuários bloqueados ao mesmo tempo.",
        "en": "at most 1000 users blocked at once.",
    },
    "setting_block_team_member": {
        "pt-BR": "o dono e os admins do bot não podem ser bloqueados.",
        "en": "the bot's owner and admins cannot be blocked.",
    },
    "setting_user_not_blocked": {
        "pt-BR": "esse usuário não está bloqueado.",
        "en": "that user is not blocked.",
    },
    "btn_details": {"pt-BR": "ℹ️ @{username}", "en": "ℹ️ @{username}"},
    "btn_stats": {"pt-BR": "📊 Estatísticas", "en": "📊 Stats"},
    "btn_disable": {"pt-BR": "⏸️ Desativar", "en": "⏸️ Disable"},
    "btn_enable": {"pt-BR": "▶️ Ativar", "en": "▶️ Enable"},
    "btn_rotate": {"pt-BR": "🔑 Novo segredo", "en": "🔑 Rotate secret"},
    "btn_delete": {"pt-BR": "🗑️ Apagar", "en": "🗑️ Delete"},
    "btn_confirm_delete": {"pt-BR": "✅ Sim, apagar", "en": "✅ Yes, delete"},
    "btn_cancel": {"pt-BR": "✖️ Cancelar", "en": "✖️ Cancel"},
    "btn_confirm_identity": {"pt-BR": "🔐 Sou eu, continuar", "en": "🔐 It is me, continue"},
    "btn_welcome": {"pt-BR": "✏️ Boas-vindas", "en": "✏️ Welcome text"},
    "btn_command": {"pt-BR": "➕ Comando", "en": "➕ Command"},
    "btn_api": {"pt-BR": "🌐 Comando de API", "en": "🌐 API command"},
    "btn_create_bot": {"pt-BR": "🆕 Criar um bot", "en": "🆕 Create a bot"},
    "action_rotate": {"pt-BR": "novo segredo de @{username}", "en": "new secret for @{username}"},
    "action_delete": {"pt-BR": "apagar @{username}", "en": "delete @{username}"},
    # -- /broadcast (issue 15) --
    "usage_broadcast": {
        "pt-BR": "/broadcast @bot · /broadcast cancelar @bot",
        "en": "/broadcast @bot · /broadcast cancel @bot",
    },
    "mgr_broadcast_ask": {
        "pt-BR": "📣 Envie a mensagem para os {active} assinantes ativos de @{username} (texto; negrito, itálico e "
        "links são mantidos). /cancel para desistir.",
        "en": "📣 Send me the message for the {active} active subscribers of @{username} (text; bold, italic and "
        "links are kept). /cancel to give up.",
    },
    "mgr_broadcast_empty": {
        "pt-BR": "❌ A mensagem está vazia: envie um texto. Comece de novo com /broadcast @bot.",
        "en": "❌ The message is empty: send a text. Start again with /broadcast @bot.",
    },
    "mgr_broadcast_too_long": {
        "pt-BR": "❌ A mensagem passa de 4096 caracteres. Comece de novo com /broadcast @bot.",
        "en": "❌ The message is longer than 4096 characters. Start again with /broadcast @bot.",
    },
    "mgr_broadcast_no_subscribers": {
        "pt-BR": "👥 @{username} não tem assinantes ativos: não há para quem enviar.",
        "en": "👥 @{username} has no active subscribers: there is nobody to send to.",
    },
    "mgr_broadcast_busy": {
        "pt-BR": "⏳ @{username} já está enviando uma mensagem em massa. Aguarde o fim ou use /broadcast cancelar "
        "@{username}.",
        "en": "⏳ @{username} is already sending a broadcast. Wait for it to end or use /broadcast cancel @{username}.",
    },
    "mgr_broadcast_preview": {
        "pt-BR": "👆 Assim ficará a mensagem. Enviar aos {active} assinantes ativos de @{username}?",
        "en": "👆 This is how it will look. Send it to the {active} active subscribers of @{username}?",
    },
    "btn_broadcast_send": {"pt-BR": "📣 Enviar", "en": "📣 Send"},
    "btn_broadcast_stop": {"pt-BR": "⏹️ Parar o envio", "en": "⏹️ Stop sending"},
    "mgr_broadcast_gone": {
        "pt-BR": "⚠️ Esse envio não está mais pendente (expirou, já começou ou foi cancelado).",
        "en": "⚠️ That broadcast is no longer pending (it expired, already started or was cancelled).",
    },
    "mgr_broadcast_discarded": {
        "pt-BR": "✖️ Envio descartado: nada foi enviado.",
        "en": "✖️ Broadcast discarded: nothing was sent.",
    },
    "mgr_broadcast_stopping": {
        "pt-BR": "⏹️ Parando o envio de @{username}…",
        "en": "⏹️ Stopping @{username}'s broadcast…",
    },
    "mgr_broadcast_none_running": {
        "pt-BR": "ℹ️ @{username} não está enviando nada agora.",
        "en": "ℹ️ @{username} is not sending anything right now.",
    },
    "mgr_broadcast_progress": {
        "pt-BR": "📣 <b>Enviando para os assinantes de @{username}</b>\n✅ Enviadas: {sent}\n❌ Falharam: {failed}\n"
        "🚫 Bloquearam o bot: {blocked}\n⏳ Faltam: {remaining} de {total} · tempo restante ≈ {eta}",
        "en": "📣 <b>Sending to @{username}'s subscribers</b>\n✅ Sent: {sent}\n❌ Failed: {failed}\n"
        "🚫 Blocked the bot: {blocked}\n⏳ Remaining: {remaining} of {total} · time left ≈ {eta}",
    },
    "mgr_broadcast_done": {
        "pt-BR": "✅ <b>Envio de @{username} concluído</b>\n✅ Enviadas: {sent}\n❌ Falharam: {failed}\n"
        "🚫 Bloquearam o bot: {blocked}",
        "en": "✅ <b>@{username}'s broadcast is done</b>\n✅ Sent: {sent}\n❌ Failed: {failed}\n"
        "🚫 Blocked the bot: {blocked}",
    },
    "mgr_broadcast_cancelled": {
        "pt-BR": "⏹️ <b>Envio de @{username} cancelado</b>\n✅ Enviadas: {sent}\n❌ Falharam: {failed}\n"
        "🚫 Bloquearam o bot: {blocked}\n⏭️ Não enviadas: {remaining}",
        "en": "⏹️ <b>@{username}'s broadcast was cancelled</b>\n✅ Sent: {sent}\n❌ Failed: {failed}\n"
        "🚫 Blocked the bot: {blocked}\n⏭️ Not sent: {remaining}",
    },
    # -- feedback inbox (src/tgm/domain/inbox.py) --
    "inbox_header": {
        "pt-BR": "📨 Mensagem de {sender} · id <code>{user_id}</code>\nResponda a esta mensagem ou à próxima para"
        " responder como o bot.",
        "en": "📨 Message from {sender} · id <code>{user_id}</code>\nReply to this message or the next one to answer"
        " as the bot.",
    },
    "inbox_sender": {"pt-BR": "<b>{name}</b>", "en": "<b>{name}</b>"},
    "inbox_sender_with_username": {"pt-BR": "<b>{name}</b> (@{username})", "en": "<b>{name}</b> (@{username})"},
    "inbox_busy": {
        "pt-BR": "⏳ Muitas mensagens agora: esta não foi entregue. Tente de novo em alguns minutos.",
        "en": "⏳ Too many messages right now: this one was not delivered. Please try again in a few minutes.",
    },
    "inbox_ack": {
        "pt-BR": "✅ Mensagem entregue. Responderemos em breve.",
        "en": "✅ Message delivered. We will answer soon.",
    },
    "inbox_reply_unknown": {
        "pt-BR": "↩️ Para responder a um usuário, responda (reply) a uma mensagem que ele enviou e que chegou aqui"
        " (as mensagens ficam respondíveis por 7 dias).",
        "en": "↩️ To answer a user, reply to a message of theirs delivered here (messages stay answerable for 7 days).",
    },
    "inbox_blocked": {
        "pt-BR": "🚫 Usuário bloqueado por 30 dias: as mensagens dele não chegam mais.",
        "en": "🚫 User blocked for 30 days: their messages no longer arrive.",
    },
    "inbox_unblocked": {"pt-BR": "✅ Usuário desbloqueado.", "en": "✅ User unblocked."},
    "inbox_not_admin": {
        "pt-BR": "⛔ Você não administra mais este bot: a resposta não foi enviada.",
        "en": "⛔ You no longer administer this bot: the reply was not sent.",
    },
    "inbox_unavailable": {
        "pt-BR": "⏳ Não foi possível confirmar quem administra este bot agora; nada foi enviado. Tente de novo em"
        " instantes.",
        "en": "⏳ Could not check who runs this bot right now; nothing was sent. Try again in a moment.",
    },
    "btn_inbox_block": {"pt-BR": "🚫 Bloquear", "en": "🚫 Block"},
    "btn_inbox_unblock": {"pt-BR": "✅ Desbloquear", "en": "✅ Unblock"},
    "usage_inbox": {"pt-BR": "/inbox @bot on | off", "en": "/inbox @bot on | off"},
    "mgr_inbox_on": {
        "pt-BR": "📨 Caixa de entrada de @{username}: ligada. As mensagens dos usuários chegam ao seu chat com"
        " @{username}; responda (reply) a elas para responder como o bot.",
        "en": "📨 Inbox of @{username}: on. Users' messages arrive in your chat with @{username}; reply to them to"
        " answer as the bot.",
    },
    "mgr_inbox_off": {
        "pt-BR": "📭 Caixa de entrada de @{username}: desligada.",
        "en": "📭 Inbox of @{username}: off.",
    },
    "mgr_inbox_unreachable": {
        "pt-BR": "⚠️ @{username} ainda não pode escrever para você: abra @{username} e envie /start, senão as"
        " mensagens não chegam.",
        "en": "⚠️ @{username} cannot write to you yet: open @{username} and send /start, or the messages will not"
        " arrive.",
    },
    "mgr_inbox_team_unreachable": {
        "pt-BR": "⚠️ {count} admin(s) de @{username} ainda não abriram @{username} e enviaram /start: as mensagens"
        " não chegam a eles até lá.",
        "en": "⚠️ {count} admin(s) of @{username} have not opened @{username} and sent /start yet: messages will not"
        " reach them until they do.",
    },
    # -- co-admins (issue 15) --
    "mgr_bot_line_admin": {
        "pt-BR": "• @{username} — {status} · 👥 admin",
        "en": "• @{username} — {status} · 👥 admin",
    },
    "mgr_owner_only": {
        "pt-BR": "⛔ Só o dono do bot pode fazer isso.",
        "en": "⛔ Only the bot's owner can do that.",
    },
    "mgr_invite": {
        "pt-BR": (
            "🎟️ Convite para administrar @{username} — vale uma vez, até {expires} UTC.\n"
            "Envie este link para a pessoa:\n{link}\n\nOu ela manda aqui: <code>/join {code}</code>"
        ),
        "en": (
            "🎟️ An invite to administer @{username} — good once, until {expires} UTC.\n"
            "Send this link to the person:\n{link}\n\nOr they send here: <code>/join {code}</code>"
        ),
    },
    "mgr_joined": {
        "pt-BR": "✅ Agora você administra @{username}. Use /mybots para vê-lo.",
        "en": "✅ You now administer @{username}. Use /mybots to see it.",
    },
    "mgr_admin_joined": {
        "pt-BR": "👥 {name} (id {user_id}) agora administra @{username}. Para revogar: /admins @{username}",
        "en": "👥 {name} (id {user_id}) now administers @{username}. To revoke: /admins @{username}",
    },
    "mgr_team_refused": {
        "pt-BR": "❌ Não foi possível: {reason}",
        "en": "❌ That did not work: {reason}",
    },
    "mgr_admins_header": {
        "pt-BR": "👥 <b>Admins de @{username}</b> (além de você, o dono)",
        "en": "👥 <b>Admins of @{username}</b> (besides you, the owner)",
    },
    "mgr_admin_line": {"pt-BR": "• id {user_id} — desde {since} UTC", "en": "• id {user_id} — since {since} UTC"},
    "mgr_no_admins": {"pt-BR": "(nenhum admin ainda)", "en": "(no admins yet)"},
    "mgr_invite_line": {
        "pt-BR": "🎟️ convite pendente, vale até {expires} UTC",
        "en": "🎟️ pending invite, good until {expires} UTC",
    },
    "mgr_admin_revoked": {
        "pt-BR": "🚫 id {user_id} não administra mais @{username}.",
        "en": "🚫 id {user_id} no longer administers @{username}.",
    },
    "mgr_you_were_revoked": {
        "pt-BR": "ℹ️ Você não administra mais @{username}.",
        "en": "ℹ️ You no longer administer @{username}.",
    },
    "mgr_invite_revoked": {
        "pt-BR": "✖️ Convite para @{username} cancelado: o código não vale mais.",
        "en": "✖️ Invite to @{username} withdrawn: its code no longer works.",
    },
    "mgr_left": {
        "pt-BR": "👋 Você deixou de administrar @{username}.",
        "en": "👋 You no longer administer @{username}.",
    },
    "usage_invite": {"pt-BR": "/invite @bot", "en": "/invite @bot"},
    "usage_join": {"pt-BR": "/join código", "en": "/join code"},
    "usage_admins": {"pt-BR": "/admins @bot", "en": "/admins @bot"},
    "usage_leave": {"pt-BR": "/leave @bot", "en": "/leave @bot"},
    "btn_invite": {"pt-BR": "🎟️ Convidar admin", "en": "🎟️ Invite an admin"},
    "btn_admins": {"pt-BR": "👥 Admins", "en": "👥 Admins"},
    "btn_revoke_admin": {"pt-BR": "🚫 Revogar id {user_id}", "en": "🚫 Revoke id {user_id}"},
    "btn_revoke_invite": {"pt-BR": "✖️ Cancelar convite ({expires})", "en": "✖️ Withdraw invite ({expires})"},
    "setting_invite_invalid": {
        "pt-BR": "esse convite não existe ou foi cancelado.",
        "en": "that invite does not exist or was withdrawn.",
    },
    "setting_invite_expired": {
        "pt-BR": "esse convite expirou; peça um novo ao dono do bot.",
        "en": "that invite expired; ask the bot's owner for a new one.",
    },
    "setting_invite_used": {
        "pt-BR": "esse convite já foi usado.",
        "en": "that invite was used already.",
    },
    "setting_invite_own_bot": {
        "pt-BR": "você é o dono desse bot; o convite é para outra pessoa.",
        "en": "you own that bot; the invite is for someone else.",
    },
    "setting_invite_already_admin": {
        "pt-BR": "você já administra esse bot.",
        "en": "you already administer that bot.",
    },
    "setting_too_many_admins": {
        "pt-BR": "no máximo 20 admins por bot.",
        "en": "at most 20 admins per bot.",
    },
    "setting_too_many_invites": {
        "pt-BR": "no máximo 10 convites pendentes por bot; cancele algum em /admins.",
        "en": "at most 10 pending invites per bot; withdraw one in /admins.",
    },
    "setting_admin_unknown": {
        "pt-BR": "essa pessoa não administra mais o bot.",
        "en": "that person no longer administers the bot.",
    },
    "setting_owner_cannot_leave": {
        "pt-BR": "o dono não pode sair do próprio bot (use Apagar).",
        "en": "the owner cannot leave their own bot (use Delete).",
    },
}


def language_for(language_code: str | None) -> str:
    """Maps Telegram's language_code to a catalogue language (pt-BR when unknown)."""
    if language_code and language_code.lower().startswith("en"):
        return "en"
    return DEFAULT_LANGUAGE


def render(key: str, language_code: str | None, **values: object) -> str:
    texts = CATALOGUE[key]
    return texts[language_for(language_code)].format(**values)
