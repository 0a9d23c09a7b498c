"""Co-admins (issue 15) end to end through the emulator, on PostgreSQL + Redis: the owner invites, a second user joins
with the link's /start, sets the bot's welcome text, cannot delete the bot; the owner revokes them and their next
command is refused. The invite code rests nowhere in clear: not in the database, not in the logs."""

from __future__ import annotations

import re

from tests.e2e.test_manager_bot import (  # noqa: F401 - `world` is the module's stack fixture
    WAIT,
    Chat,
    World,
    answers,
    new_bot,
    user,
    world,
)
from tests.support.secrets_scan import database_hits, text_hits
from tgm.tools.devstack.stack import wait_for

START_LINK = re.compile(r"https://t\.me/[A-Za-z0-9_]+\?start=([A-Za-z0-9_-]{20,64})")


def test_owner_invites_helper_joins_configures_cannot_delete_and_is_revoked(world: World) -> None:  # noqa: F811
    owner, helper = Chat(world, user(81001)), Chat(world, user(81002))
    bot = new_bot(world, "team_81001_bot")
    owner.say(f"/addbot {bot['token']}", 2)

    (invite,) = owner.say("/invite @team_81001_bot")
    found = START_LINK.search(invite["plain_text"])
    assert found is not None, invite["plain_text"]
    code = found.group(1)
    assert f"/join {code}" in invite["plain_text"]

    (joined,) = helper.say(f"/start {code}")  # what opening the link sends
    assert "Agora você administra @team_81001_bot" in joined["plain_text"]
    (told,) = owner.replies()
    assert "(id 81002) agora administra @team_81001_bot" in told["plain_text"]
    (again,) = helper.say(f"/join {code}")
    assert "já administra" in again["plain_text"] or "já foi usado" in again["plain_text"]

    # The helper runs the bot: its listing shows the role, no delete or rotate; the welcome text is theirs to set.
    (listing,) = helper.say("/mybots")
    assert "@team_81001_bot" in listing["plain_text"] and "admin" in listing["plain_text"]
    labels = [item["text"] for row in listing["reply_markup"]["inline_keyboard"] for item in row]
    assert not [label for label in labels if "Apagar" in label or "Novo segredo" in label]
    (reply,) = helper.say("/setwelcome @team_81001_bot Olá do ajudante")
    assert "boas-vindas" in reply["plain_text"].lower()
    customer = {"id": 81099, "first_name": "Cli"}
    got = answers(world, bot, customer, "/start")

    def welcomed() -> bool:
        """Asks again until the new text answers (a dispatcher that cached the bot before the change)."""
        if got() and got()[-1] == "Olá do ajudante":
            return True
        world.emulator.send_text(bot["id"], customer, "/start")
        return False

    wait_for(welcomed, WAIT, "the helper's welcome", interval=2.0)

    # The helper cannot delete it: the owner's delete button, pressed by the helper, is refused.
    (owners_listing,) = owner.say("/mybots")
    query = owner.press(owners_listing, "Apagar", presser=helper.user)
    assert owner.answer_of(query)["answer_text"] == "⚠️ Essa ação não é válida mais."
    (refused,) = helper.say("/invite @team_81001_bot")
    assert "Só o dono do bot" in refused["plain_text"]

    # The owner revokes the helper with the signed button; the helper is told and refused from then on.
    (admins,) = owner.say("/admins @team_81001_bot")
    assert "id 81002" in admins["plain_text"]
    owner.press(admins, "Revogar id 81002")
    (revoked,) = owner.replies()
    assert "id 81002 não administra mais @team_81001_bot" in revoked["plain_text"]
    (notice,) = helper.replies()
    assert "Você não administra mais @team_81001_bot" in notice["plain_text"]
    (refused,) = helper.say("/setwelcome @team_81001_bot de volta?")
    assert "Bot não encontrado" in refused["plain_text"]
    (listing,) = helper.say("/mybots")
    assert "ainda não tem bots" in listing["plain_text"]

    # The bot still exists and answers; the code rests in clear neither in the database nor in the logs.
    answered = len(got())
    world.emulator.send_text(bot["id"], customer, "/start")
    wait_for(lambda: len(got()) > answered, WAIT, "the bot still answering")
    assert got()[-1] == "Olá do ajudante"
    assert database_hits(world.stack.db_url, [code]) == []
    assert text_hits(world.stack.log_text(), [code]) == []
