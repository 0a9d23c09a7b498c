// The emulator's chat page: play Telegram users against the emulator's bots. Every action goes through the
// emulator's control API (the same calls as curl would make), and the page follows the emulator's state through
// Server-Sent Events (`/_emulator/events`), falling back to polling while the stream is down.
// Bot text is never given to the HTML parser: see telegram_html.js. Nothing here uses innerHTML.
"use strict";

(function () {
  const USERS_KEY = "tgm-emulator.users";
  const CURRENT_KEY = "tgm-emulator.user";
  const POLL_MS = 2000;
  const TOAST_MS = 6000;
  const CALLBACK_WAIT_MS = 60000;
  const MAX_USER_ID = 2 ** 52;

  const $ = (id) => document.getElementById(id);
  const state = {
    users: [], // [{id, first_name, language_code}]: the server's (who wrote) and this browser's own
    user: null,
    bots: [],
    chats: [],
    botId: null,
    messages: [],
    nodes: new Map(), // message_id → {signature, node}
    pendingCallbacks: [], // [{botId, id, since}]
    managedForm: null, // the open request_managed_bot form, kept across refreshes
  };

  // -- helpers -------------------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function describe(body, status) {
    if (body && typeof body.description === "string") return body.description;
    if (body && Array.isArray(body.detail)) {
      return body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ");
    }
    return `HTTP ${status}`;
  }

  async function api(method, path, body) {
    const options = { method, headers: {} };
    if (body !== undefined) {
      options.headers["content-type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      const error = new Error(describe(data, response.status));
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function toast(text, kind) {
    const node = el("div", `toast${kind ? " " + kind : ""}`, text);
    $("toasts").appendChild(node);
    if (kind === "alert") {
      node.title = "click to close";
      node.addEventListener("click", () => node.remove());
    } else {
      setTimeout(() => node.remove(), TOAST_MS);
    }
  }

  function fail(error) {
    toast(String(error.message || error), "error");
  }

  function timeOf(date) {
    return new Date(date * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function userPayload() {
    const user = state.user;
    return { id: user.id, first_name: user.first_name, language_code: user.language_code };
  }

  // -- users ---------------------------------------------------------------------------------------

  function loadStoredUsers() {
    try {
      const stored = JSON.parse(localStorage.getItem(USERS_KEY) || "[]");
      state.users = Array.isArray(stored) ? stored.filter((u) => Number.isSafeInteger(u.id) && u.id > 0) : [];
      const current = Number(localStorage.getItem(CURRENT_KEY));
      state.user = state.users.find((u) => u.id === current) || null;
    } catch (_) {
      state.users = [];
    }
  }

  function storeUsers() {
    try {
      localStorage.setItem(USERS_KEY, JSON.stringify(state.users));
      localStorage.setItem(CURRENT_KEY, state.user ? String(state.user.id) : "");
    } catch (_) {
      // private mode or storage full: the page still works for this visit
    }
  }

  function mergeUsers(serverUsers) {
    for (const known of serverUsers) {
      if (!state.users.some((u) => u.id === known.id)) {
        state.users.push({
          id: known.id,
          first_name: known.first_name || "User",
          language_code: known.language_code || "pt-br",
        });
      }
    }
    state.users.sort((a, b) => a.id - b.id);
  }

  function freeUserId() {
    for (;;) {
      const id = 100000 + Math.floor(Math.random() * 900000);
      if (!state.users.some((u) => u.id === id)) return id;
    }
  }

  function useUser(user) {
    const index = state.users.findIndex((u) => u.id === user.id);
    if (index >= 0) state.users[index] = user;
    else state.users.push(user);
    state.user = user;
    // The same bot stays open, now seen as this user.
    resetMessages();
    storeUsers();
    refresh();
  }

  function onUserForm(event) {
    event.preventDefault();
    const rawId = $("user-id").value.trim();
    const id = rawId === "" ? freeUserId() : Number(rawId);
    if (!/^\d*$/.test(rawId) || !Number.isSafeInteger(id) || id <= 0 || id > MAX_USER_ID) {
      toast("The user id must be a positive whole number (private chats have positive ids).", "error");
      return;
    }
    const firstName = $("user-first-name").value.trim() || `User ${id}`;
    if (firstName.length > 64) {
      toast("The first name is at most 64 characters.", "error");
      return;
    }
    const lang = $("user-lang").value === "en" ? "en" : "pt-br";
    useUser({ id, first_name: firstName, language_code: lang });
    $("user-id").value = "";
    $("user-first-name").value = "";
  }

  function renderUsers() {
    const select = $("user-select");
    select.replaceChildren(el("option", "", "—"));
    select.firstChild.value = "";
    for (const user of state.users) {
      const option = el("option", "", `${user.first_name} (${user.id}, ${user.language_code || "?"})`);
      option.value = String(user.id);
      option.selected = state.user !== null && user.id === state.user.id;
      select.appendChild(option);
    }
    $("current-user").textContent = state.user
      ? `${state.user.first_name} · id ${state.user.id} · ${state.user.language_code}`
      : "no user yet: pick or create one";
    $("current-user").dataset.userId = state.user ? String(state.user.id) : "";
  }

  // -- bots and chats ------------------------------------------------------------------------------

  function botItem(bot, chat) {
    const item = el("li");
    item.dataset.botId = String(bot.id);
    if (bot.id === state.botId) item.classList.add("selected");
    const name = el("span", "name", bot.first_name);
    if (bot.can_manage_bots) name.appendChild(el("span", "badge", "manager"));
    item.appendChild(name);
    item.appendChild(el("span", "handle", `@${bot.username} · ${bot.id}`));
    if (chat) {
      const who = chat.last_from_bot ? "" : "You: ";
      item.appendChild(el("span", "preview", chat.last_text ? who + chat.last_text : ""));
    }
    item.addEventListener("click", () => selectBot(bot.id));
    return item;
  }

  function renderLists() {
    const byId = new Map(state.bots.map((b) => [b.id, b]));
    const chatList = $("chat-list");
    const botList = $("bot-list");
    const inChats = new Set();
    const chatItems = [];
    for (const chat of state.chats) {
      const bot = byId.get(chat.bot_id);
      if (!bot) continue;
      inChats.add(bot.id);
      chatItems.push(botItem(bot, chat));
    }
    chatList.replaceChildren(...chatItems);
    if (!chatItems.length) chatList.appendChild(el("li", "empty", state.user ? "no chats yet" : "pick a user"));
    const others = state.bots.filter((b) => !inChats.has(b.id)).map((b) => botItem(b, null));
    botList.replaceChildren(...others);
    if (!others.length) botList.appendChild(el("li", "empty", "none"));
  }

  function selectBot(botId) {
    if (state.botId === botId) return;
    state.botId = botId;
    state.managedForm = null;
    resetMessages();
    refresh();
    $("composer-text").focus();
  }

  function managerBot() {
    return state.bots.find((b) => b.can_manage_bots) || null;
  }

  // -- messages ------------------------------------------------------------------------------------

  function resetMessages() {
    state.messages = [];
    state.nodes.clear();
    $("messages").replaceChildren();
  }

  function inlineKeyboard(message) {
    const rows = (message.reply_markup && message.reply_markup.inline_keyboard) || [];
    if (!Array.isArray(rows) || !rows.length) return null;
    const keyboard = el("div", "inline-keyboard");
    for (const row of rows) {
      if (!Array.isArray(row)) continue;
      const line = el("div", "kb-row");
      for (const button of row) {
        if (!button || typeof button !== "object") continue;
        const label = String(button.text || "");
        const href = button.url ? TelegramHtml.safeHref(String(button.url)) : null;
        if (href) {
          const link = el("a", "", `${label} ↗`);
          link.href = href;
          link.target = "_blank";
          link.rel = "noopener noreferrer";
          line.appendChild(link);
          continue;
        }
        const node = el("button", "", label);
        node.type = "button";
        if (typeof button.callback_data === "string") {
          node.dataset.callbackData = button.callback_data;
          node.addEventListener("click", () => press(message.message_id, button.callback_data, node));
        } else {
          node.disabled = true;
          node.title = "this kind of button is not emulated";
        }
        line.appendChild(node);
      }
      keyboard.appendChild(line);
    }
    return keyboard;
  }

  function messageNode(message) {
    const node = el("div", "message");
    node.dataset.messageId = String(message.message_id);
    const bubble = el("div", "bubble");
    node.appendChild(bubble);
    if (message.deleted) {
      // The text is gone, as in Telegram (the manager bot deletes messages that held a token).
      node.classList.add("deleted", message.from_bot ? "from-bot" : "from-user");
      bubble.appendChild(el("span", "", "🗑 message deleted"));
      return node;
    }
    if (message.service) {
      node.classList.add("service");
      const created = message.service.managed_bot_created;
      const text = created && created.bot ? `You created the bot @${created.bot.username}` : "service message";
      bubble.appendChild(el("span", "text", text));
      return node;
    }
    node.classList.add(message.from_bot ? "from-bot" : "from-user");
    const text = el("div", "text");
    text.appendChild(TelegramHtml.renderText(String(message.text || ""), message.from_bot ? message.parse_mode : null));
    bubble.appendChild(text);
    const meta = el("div", "meta");
    if (message.edited) meta.appendChild(el("span", "edited", "edited"));
    meta.appendChild(el("time", "", timeOf(message.edited && message.edit_date ? message.edit_date : message.date)));
    bubble.appendChild(meta);
    const keyboard = message.from_bot ? inlineKeyboard(message) : null;
    if (keyboard) node.appendChild(keyboard);
    return node;
  }

  function renderMessages() {
    const box = $("messages");
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    const seen = new Set();
    let index = 0;
    for (const message of state.messages) {
      seen.add(message.message_id);
      const signature = JSON.stringify(message);
      let entry = state.nodes.get(message.message_id);
      if (!entry || entry.signature !== signature) {
        const node = messageNode(message);
        if (entry) entry.node.replaceWith(node);
        entry = { signature, node };
        state.nodes.set(message.message_id, entry);
      }
      if (box.children[index] !== entry.node) box.insertBefore(entry.node, box.children[index] || null);
      index += 1;
    }
    for (const [id, entry] of state.nodes) {
      if (!seen.has(id)) {
        entry.node.remove();
        state.nodes.delete(id);
      }
    }
    if (nearBottom) box.scrollTop = box.scrollHeight;
  }

  function currentReplyKeyboard() {
    // The latest bot message that set or removed a reply keyboard decides, as in Telegram.
    for (let i = state.messages.length - 1; i >= 0; i -= 1) {
      const message = state.messages[i];
      const markup = message.from_bot && !message.deleted ? message.reply_markup : null;
      if (!markup) continue;
      if (markup.remove_keyboard) return null;
      if (Array.isArray(markup.keyboard)) return markup.keyboard;
    }
    return null;
  }

  function renderReplyKeyboard() {
    const box = $("reply-keyboard");
    const rows = state.user && state.botId ? currentReplyKeyboard() : null;
    if (!rows) {
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    const children = [];
    for (const row of rows) {
      if (!Array.isArray(row)) continue;
      const line = el("div", "kb-row");
      for (const raw of row) {
        const button = typeof raw === "string" ? { text: raw } : raw || {};
        const node = el("button", "", String(button.text || ""));
        node.type = "button";
        if (button.request_managed_bot) {
          node.dataset.requestManagedBot = "1";
          node.addEventListener("click", () => openManagedForm(button.request_managed_bot));
        } else if (Object.keys(button).length === 1) {
          node.addEventListener("click", () => sendText(String(button.text || "")));
        } else {
          node.disabled = true;
          node.title = "this kind of button is not emulated";
        }
        line.appendChild(node);
      }
      children.push(line);
    }
    if (state.managedForm) children.push(state.managedForm);
    box.replaceChildren(...children);
    box.hidden = false;
  }

  function openManagedForm(request) {
    const form = el("form");
    const input = el("input");
    input.id = "managed-username";
    input.placeholder = "new bot's username";
    input.value = (request && request.suggested_username) || `my_${Math.floor(Math.random() * 1e6)}_bot`;
    const create = el("button", "", "Create bot");
    create.type = "submit";
    const cancel = el("button", "", "Cancel");
    cancel.type = "button";
    cancel.addEventListener("click", () => {
      state.managedForm = null;
      renderReplyKeyboard();
    });
    form.append(input, create, cancel);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const username = input.value.trim();
      if (!/^[A-Za-z][A-Za-z0-9_]{3,31}$/.test(username)) {
        toast("A bot username is 4-32 letters, digits or _ and starts with a letter.", "error");
        return;
      }
      try {
        await api("POST", `/_emulator/bots/${state.botId}/managed_bots`, { user: userPayload(), username });
        state.managedForm = null;
        toast(`Created @${username} through the manager bot`);
        refresh();
      } catch (error) {
        fail(error);
      }
    });
    state.managedForm = form;
    renderReplyKeyboard();
    input.focus();
  }

  // -- actions -------------------------------------------------------------------------------------

  async function sendText(text) {
    if (!state.user || !state.botId) {
      toast("Pick a user and a bot first.", "error");
      return false;
    }
    if (!text.trim()) return false;
    try {
      await api("POST", `/_emulator/bots/${state.botId}/messages`, { user: userPayload(), text });
      refresh();
      return true;
    } catch (error) {
      fail(error);
      return false;
    }
  }

  async function onCompose(event) {
    event.preventDefault();
    const box = $("composer-text");
    if (await sendText(box.value)) box.value = "";
    box.focus();
  }

  async function press(messageId, data, node) {
    if (!state.user || !state.botId) return;
    node.disabled = true;
    try {
      const body = { user: userPayload(), chat_id: state.user.id, message_id: messageId, data };
      const answer = await api("POST", `/_emulator/bots/${state.botId}/callbacks`, body);
      state.pendingCallbacks.push({ botId: state.botId, id: answer.callback_query_id, since: Date.now() });
      refresh();
    } catch (error) {
      fail(error);
    } finally {
      node.disabled = false;
    }
  }

  async function checkCallbacks() {
    const now = Date.now();
    state.pendingCallbacks = state.pendingCallbacks.filter((p) => now - p.since < CALLBACK_WAIT_MS);
    const botIds = [...new Set(state.pendingCallbacks.map((p) => p.botId))];
    for (const botId of botIds) {
      let queries;
      try {
        queries = await api("GET", `/_emulator/bots/${botId}/callbacks`);
      } catch (_) {
        continue;
      }
      const byId = new Map(queries.map((q) => [q.id, q]));
      state.pendingCallbacks = state.pendingCallbacks.filter((pending) => {
        const query = pending.botId === botId ? byId.get(pending.id) : undefined;
        if (!query || !query.answered) return true;
        if (query.answer_text) toast(query.answer_text, query.show_alert ? "alert" : "");
        return false;
      });
    }
  }

  async function mint(event) {
    event.preventDefault();
    const typed = $("mint-username").value.trim();
    const username = typed || `emu_${Date.now().toString(36)}_bot`;
    if (!/^[A-Za-z][A-Za-z0-9_]{3,31}$/.test(username)) {
      toast("A bot username is 4-32 letters, digits or _ and starts with a letter.", "error");
      return;
    }
    try {
      const bot = await api("POST", "/_emulator/bots", { username, first_name: username });
      $("minted-username").textContent = bot.username;
      $("minted-token").textContent = bot.token;
      $("minted").hidden = false;
      $("mint-username").value = "";
      refresh();
    } catch (error) {
      fail(error);
    }
  }

  async function copyToken() {
    const token = $("minted-token").textContent;
    try {
      await navigator.clipboard.writeText(token);
      toast("Token copied");
    } catch (_) {
      // no clipboard permission: the token is selectable (user-select: all)
      getSelection().selectAllChildren($("minted-token"));
      toast("Select-all done: copy with Ctrl-C");
    }
  }

  function tokenToManager() {
    const manager = managerBot();
    if (!manager) {
      toast("No manager bot in this emulator.", "error");
      return;
    }
    selectBot(manager.id);
    $("composer-text").value = `/addbot ${$("minted-token").textContent}`;
    $("composer-text").focus();
  }

  // -- loading and live updates --------------------------------------------------------------------

  async function load() {
    const [bots, users] = await Promise.all([api("GET", "/_emulator/bots"), api("GET", "/_emulator/users")]);
    state.bots = bots;
    mergeUsers(users);
    if (state.botId !== null && !bots.some((b) => b.id === state.botId)) {
      state.botId = null; // the emulator was reset
      resetMessages();
    }
    const user = state.user;
    const botId = state.botId;
    state.chats = user ? await api("GET", `/_emulator/users/${user.id}/chats`) : [];
    const messages = user && botId !== null ? await api("GET", `/_emulator/bots/${botId}/chats/${user.id}/messages`) : [];
    if (state.user !== user || state.botId !== botId) return; // switched meanwhile: the next load shows it
    state.messages = messages;
    if (state.pendingCallbacks.length) await checkCallbacks();
    render();
  }

  function render() {
    renderUsers();
    renderLists();
    const bot = state.bots.find((b) => b.id === state.botId);
    $("chat-title").textContent = bot ? bot.first_name : "Pick a bot on the left";
    $("chat-subtitle").textContent = bot
      ? `@${bot.username} · bot id ${bot.id}${bot.can_manage_bots ? " · manager bot" : ""}`
      : state.user
        ? ""
        : "and pick or create a user above";
    const ready = Boolean(bot && state.user);
    $("composer-text").disabled = !ready;
    $("send").disabled = !ready;
    renderMessages();
    renderReplyKeyboard();
  }

  let running = null;
  let again = false;

  function refresh() {
    if (running) {
      again = true; // one more load after this one: it sees every change made meanwhile
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          await load();
        } catch (error) {
          setLive(false, "emulator unreachable");
        }
      } while (again);
    })().finally(() => {
      running = null;
    });
    return running;
  }

  let pollTimer = null;

  function setLive(live, text) {
    const node = $("live");
    node.textContent = text || (live ? "live" : "polling");
    node.classList.toggle("off", !live);
  }

  function startPolling() {
    if (pollTimer === null) pollTimer = setInterval(refresh, POLL_MS);
  }

  function stopPolling() {
    if (pollTimer !== null) clearInterval(pollTimer);
    pollTimer = null;
  }

  function connectEvents() {
    if (!window.EventSource) {
      setLive(false);
      startPolling();
      return;
    }
    const source = new EventSource("/_emulator/events");
    source.addEventListener("open", () => {
      stopPolling();
      setLive(true);
    });
    // The stream ends every few seconds by design and EventSource reconnects by itself; poll meanwhile.
    source.addEventListener("error", () => {
      setLive(false);
      startPolling();
    });
    source.addEventListener("change", () => refresh());
  }

  function init() {
    loadStoredUsers();
    $("user-form").addEventListener("submit", onUserForm);
    $("user-select").addEventListener("change", (event) => {
      const id = Number(event.target.value);
      const user = state.users.find((u) => u.id === id);
      if (user) useUser(user);
    });
    $("composer").addEventListener("submit", onCompose);
    $("composer-text").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        $("composer").requestSubmit();
      }
    });
    $("mint-form").addEventListener("submit", mint);
    $("copy-token").addEventListener("click", copyToken);
    $("use-token").addEventListener("click", tokenToManager);
    render();
    refresh();
    connectEvents();
  }

  init();
})();
