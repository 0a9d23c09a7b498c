"""The emulator's chat page in headless Chromium: a newcomer plays Telegram users in a browser.

The first tests run the page against an in-process emulator, the test playing the bot through the Bot API; the
last one runs the whole stack (PostgreSQL + Redis) and walks the manager bot's flow from the issue.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from tests.browser.conftest import wait
from tgm.tools.devstack.emulator_control import EmulatorControl
from tgm.tools.devstack.stack import Stack, StackConfig, wait_for

pytestmark = pytest.mark.browser

TOKEN_SHAPE = re.compile(r"^\d+:[A-Za-z0-9_-]{35}$")
EVIL = '<script>window.__xss = 1; alert("script")</script><img src=x onerror="window.__xss = 2; alert(\'img\')"> end'


# -- driving the page ---------------------------------------------------------------------------------


def use_user(browser: webdriver.Chrome, user_id: int, first_name: str, lang: str) -> None:
    """Creates (or picks) a user with the page's form and waits until the page acts as that user."""
    browser.find_element(By.ID, "user-id").clear()
    browser.find_element(By.ID, "user-id").send_keys(str(user_id))
    browser.find_element(By.ID, "user-first-name").clear()
    browser.find_element(By.ID, "user-first-name").send_keys(first_name)
    Select(browser.find_element(By.ID, "user-lang")).select_by_value(lang)
    browser.find_element(By.ID, "user-use").click()
    wait(
        browser,
        lambda b: b.find_element(By.ID, "current-user").get_attribute("data-user-id") == str(user_id),
        f"user {user_id}",
    )


def open_chat(browser: webdriver.Chrome, bot_id: int) -> None:
    """Clicks the bot in the left column (lists are re-rendered live: find and click in one step)."""

    def click(b: webdriver.Chrome) -> bool:
        b.find_element(By.CSS_SELECTOR, f'li[data-bot-id="{bot_id}"]').click()
        return True

    wait(browser, click, f"bot {bot_id} in the left column")
    wait(
        browser,
        lambda b: (
            f"bot id {bot_id}" in b.find_element(By.ID, "chat-subtitle").text
            and b.find_element(By.ID, "composer-text").is_enabled()
        ),
        f"the chat with bot {bot_id}",
    )


def send(browser: webdriver.Chrome, text: str) -> None:
    box = browser.find_element(By.ID, "composer-text")
    box.send_keys(text)
    browser.find_element(By.ID, "send").click()
    wait(browser, lambda b: b.find_element(By.ID, "composer-text").get_attribute("value") == "", "the message sent")


def messages(browser: webdriver.Chrome, side: str = "from-bot") -> list[WebElement]:
    return browser.find_elements(By.CSS_SELECTOR, f"#messages .message.{side}")


def bot_texts(browser: webdriver.Chrome) -> list[str]:
    return [
        m.find_element(By.CSS_SELECTOR, ".text").text
        for m in messages(browser)
        if "deleted" not in (m.get_attribute("class") or "")
    ]


def message_node(browser: webdriver.Chrome, message_id: int) -> WebElement:
    return browser.find_element(By.CSS_SELECTOR, f'#messages .message[data-message-id="{message_id}"]')


def press(browser: webdriver.Chrome, message_id: int, label: str) -> None:
    def click(b: webdriver.Chrome) -> bool:
        for button in message_node(b, message_id).find_elements(By.CSS_SELECTOR, ".inline-keyboard button"):
            if label in button.text:
                button.click()
                return True
        return False

    wait(browser, click, f"button {label!r} under message {message_id}")


def toasts(browser: webdriver.Chrome) -> list[str]:
    return [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#toasts .toast")]


def no_alert(browser: webdriver.Chrome) -> bool:
    try:
        _ = browser.switch_to.alert  # raises when no alert is open
    except NoAlertPresentException:
        return True
    return False


# -- against an in-process emulator, the test plays the bot -------------------------------------------


def new_bot(emulator: httpx.Client, username: str, **extra: Any) -> dict[str, Any]:
    response = emulator.post("/_emulator/bots", json={"username": username, **extra})
    response.raise_for_status()
    return dict(response.json())


def bot_api(emulator: httpx.Client, bot: dict[str, Any], method: str, **params: Any) -> Any:
    body = emulator.post(f"/bot{bot['token']}/{method}", json=params).json()
    assert body["ok"] is True, body
    return body["result"]


def test_bot_text_is_shown_as_text_and_only_telegrams_tags_are_formatted(
    driver: webdriver.Chrome, emulator: httpx.Client
) -> None:
    bot = new_bot(emulator, "xss_bot")
    user: dict[str, Any] = {"id": 6101, "first_name": "Eve", "language_code": "en"}
    emulator.post(f"/_emulator/bots/{bot['id']}/messages", json={"user": user, "text": "hi"}).raise_for_status()
    plain = bot_api(emulator, bot, "sendMessage", chat_id=user["id"], text=EVIL)  # no parse_mode: all text
    html = bot_api(
        emulator,
        bot,
        "sendMessage",
        chat_id=user["id"],
        parse_mode="HTML",
        text=(
            "<b>bold</b> <i>it</i> <u>under</u> <s>gone</s> <code>x &lt;y&gt; &amp; z</code> <pre>pre</pre> "
            '<a href="https://example.com/?a=1&amp;b=2">ok link</a> <a href="javascript:alert(1)">js link</a> '
            "<tg-spoiler>secret</tg-spoiler> <blockquote>quoted</blockquote> &lt;img src=x onerror=alert(1)&gt;"
        ),
    )

    driver.get(f"{emulator.base_url}/")
    use_user(driver, user["id"], "Eve", "en")
    open_chat(driver, bot["id"])
    wait(driver, lambda b: len(bot_texts(b)) == 2, "the bot's two messages")

    shown = message_node(driver, plain["message_id"]).find_element(By.CSS_SELECTOR, ".text")
    assert shown.text == EVIL  # every character visible, as typed
    assert shown.find_elements(By.CSS_SELECTOR, "*") == []  # not a single element made from it
    assert driver.find_elements(By.CSS_SELECTOR, "#messages script, #messages img") == []
    assert driver.execute_script("return window.__xss") is None
    assert no_alert(driver)

    formatted = message_node(driver, html["message_id"]).find_element(By.CSS_SELECTOR, ".text")
    assert formatted.find_element(By.TAG_NAME, "b").text == "bold"
    assert formatted.find_element(By.TAG_NAME, "i").text == "it"
    assert formatted.find_element(By.TAG_NAME, "u").text == "under"
    assert formatted.find_element(By.TAG_NAME, "s").text == "gone"
    assert formatted.find_element(By.TAG_NAME, "code").text == "x <y> & z"
    assert formatted.find_element(By.TAG_NAME, "pre").text == "pre"
    assert formatted.find_element(By.TAG_NAME, "blockquote").text == "quoted"
    links = formatted.find_elements(By.TAG_NAME, "a")
    assert [(a.text, a.get_attribute("href")) for a in links] == [("ok link", "https://example.com/?a=1&b=2")]
    unsafe = formatted.find_element(By.CSS_SELECTOR, ".unsafe-link")
    assert unsafe.text == "js link" and unsafe.get_attribute("href") is None
    spoiler = formatted.find_element(By.CSS_SELECTOR, ".tg-spoiler")
    assert "revealed" not in (spoiler.get_attribute("class") or "")
    spoiler.click()
    assert "revealed" in (spoiler.get_attribute("class") or "")
    assert formatted.text.endswith("<img src=x onerror=alert(1)>")  # an escaped tag stays text
    assert driver.find_elements(By.CSS_SELECTOR, "#messages img") == []
    assert driver.execute_script("return window.__xss") is None
    assert no_alert(driver)


def test_messages_buttons_answers_edits_and_deletions_arrive_without_reload(
    driver: webdriver.Chrome, emulator: httpx.Client
) -> None:
    bot = new_bot(emulator, "live_bot", first_name="Live bot")
    driver.get(f"{emulator.base_url}/")
    wait(driver, lambda b: b.find_element(By.ID, "live").text == "live", "the event stream")
    use_user(driver, 6201, "Ana", "pt-br")
    open_chat(driver, bot["id"])

    # Sent as the user: the emulator stores it and queues the update for the bot's webhook, like the control API.
    send(driver, "hello from the page")
    transcript = emulator.get(f"/_emulator/bots/{bot['id']}/chats/6201/messages").json()
    assert [(m["from_bot"], m["text"]) for m in transcript] == [(False, "hello from the page")]
    assert emulator.get(f"/_emulator/bots/{bot['id']}/webhook").json()["pending_update_count"] == 1
    assert emulator.get("/_emulator/users").json() == [{"id": 6201, "first_name": "Ana", "language_code": "pt-br"}]
    wait(driver, lambda b: [m.text for m in messages(b, "from-user")] != [], "the user's message in the chat")
    assert "hello from the page" in messages(driver, "from-user")[0].text

    keyboard = {
        "inline_keyboard": [[{"text": "Yes", "callback_data": "answer:yes"}, {"text": "No", "callback_data": "no"}]]
    }
    asked = bot_api(emulator, bot, "sendMessage", chat_id=6201, text="Continue?", reply_markup=keyboard)
    wait(driver, lambda b: "Continue?" in bot_texts(b), "the bot's question, pushed to the page")

    press(driver, asked["message_id"], "Yes")
    queries = wait(
        driver, lambda _: emulator.get(f"/_emulator/bots/{bot['id']}/callbacks").json(), "the callback query"
    )
    assert [(q["chat_id"], q["message_id"], q["data"]) for q in queries] == [(6201, asked["message_id"], "answer:yes")]
    bot_api(emulator, bot, "answerCallbackQuery", callback_query_id=queries[0]["id"], text="Saved ✓")
    wait(driver, lambda b: "Saved ✓" in toasts(b), "the callback answer as a toast")

    bot_api(emulator, bot, "editMessageText", chat_id=6201, message_id=asked["message_id"], text="Continued.")
    wait(driver, lambda b: "Continued." in bot_texts(b), "the edited text")
    edited = message_node(driver, asked["message_id"])
    assert edited.find_element(By.CSS_SELECTOR, ".edited").text == "edited"
    assert edited.find_elements(By.CSS_SELECTOR, ".inline-keyboard button") == []  # the edit dropped the keyboard

    bot_api(emulator, bot, "deleteMessage", chat_id=6201, message_id=asked["message_id"])
    wait(
        driver,
        lambda b: "deleted" in (message_node(b, asked["message_id"]).get_attribute("class") or ""),
        "the deletion",
    )
    assert "Continued." not in driver.find_element(By.ID, "messages").text

    # A reply keyboard's text button sends its text as the user.
    bot_api(emulator, bot, "sendMessage", chat_id=6201, text="Pick", reply_markup={"keyboard": [[{"text": "Menu"}]]})

    def click_menu(b: webdriver.Chrome) -> bool:
        b.find_element(By.CSS_SELECTOR, "#reply-keyboard button").click()
        return True

    wait(driver, click_menu, "the reply keyboard")
    wait(
        driver,
        lambda _: (
            [m["text"] for m in emulator.get(f"/_emulator/bots/{bot['id']}/chats/6201/messages").json()][-1] == "Menu"
        ),
        "the reply button's text sent as the user",
    )

    # The left column lists the chat with its latest message.
    wait(
        driver,
        lambda b: "Menu" in b.find_element(By.CSS_SELECTOR, f'#chat-list li[data-bot-id="{bot["id"]}"]').text,
        "the chat list's preview",
    )


def test_a_request_managed_bot_button_creates_a_bot_through_the_manager(
    driver: webdriver.Chrome, emulator: httpx.Client
) -> None:
    manager = new_bot(emulator, "mgr_page_bot", can_manage_bots=True)
    driver.get(f"{emulator.base_url}/")
    use_user(driver, 6301, "Rui", "pt-br")
    open_chat(driver, manager["id"])
    send(driver, "/start")
    keyboard = {"keyboard": [[{"text": "Create bot", "request_managed_bot": {"request_id": 1}}]]}
    bot_api(emulator, manager, "sendMessage", chat_id=6301, text="Menu", reply_markup=keyboard)

    def click_create(b: webdriver.Chrome) -> bool:
        b.find_element(By.CSS_SELECTOR, "#reply-keyboard button[data-request-managed-bot]").click()
        return True

    wait(driver, click_create, "the request_managed_bot button")
    field = wait(driver, lambda b: b.find_element(By.ID, "managed-username"), "the username form")
    field.clear()
    field.send_keys("made_in_page_bot")
    field.submit()
    made = wait(
        driver,
        lambda _: [b for b in emulator.get("/_emulator/bots").json() if b["username"] == "made_in_page_bot"],
        "the managed bot",
    )
    assert made[0]["manager_id"] == manager["id"]
    wait(
        driver,
        lambda b: "You created the bot @made_in_page_bot" in b.find_element(By.ID, "messages").text,
        "the service message",
    )


def test_mint_token_shows_a_working_token_of_a_new_bot(driver: webdriver.Chrome, emulator: httpx.Client) -> None:
    driver.get(f"{emulator.base_url}/")
    driver.find_element(By.ID, "mint-username").send_keys("minted_here_bot")
    driver.find_element(By.ID, "mint-token").click()
    wait(driver, lambda b: b.find_element(By.ID, "minted-token").text, "the minted token")
    token = driver.find_element(By.ID, "minted-token").text
    assert TOKEN_SHAPE.fullmatch(token)
    assert driver.find_element(By.ID, "minted-username").text == "minted_here_bot"
    assert emulator.get(f"/bot{token}/getMe").json()["result"]["username"] == "minted_here_bot"
    wait(
        driver,
        lambda b: "@minted_here_bot" in b.find_element(By.ID, "bot-list").text,
        "the new bot in the left column",
    )
    # A taken username is refused with the emulator's words, and nothing else is minted.
    driver.find_element(By.ID, "mint-username").send_keys("minted_here_bot")
    driver.find_element(By.ID, "mint-token").click()
    wait(driver, lambda b: any("username is already taken" in t for t in toasts(b)), "the refusal")
    assert len(emulator.get("/_emulator/bots").json()) == 1
    assert driver.find_element(By.ID, "minted-token").text == token


# -- the whole stack: the manager bot, then the new bot ------------------------------------------------

STACK_WAIT = 60.0


@pytest.fixture(scope="module")
def stack(postgres_server: Any, redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    name = "tgm_browser_e2e"
    db_url = postgres_server.fresh_database(name)
    redis.Redis.from_url(redis_server.url).flushall()
    config = StackConfig(
        run_dir=tmp_path_factory.mktemp("browser") / "run",
        **redis_server.stack_config(),
        db_url=db_url,
        # Several replies a second to one chat: the 1/s outbound limit per chat would only slow this down.
        extra_env={"dispatcher": {"OUTBOUND_PER_CHAT_PER_SECOND": "20"}},
    )
    started = Stack(config).start()
    control = EmulatorControl(started.emulator_url)
    try:
        assert started.manager is not None
        manager_id = int(str(started.manager["id"]))
        wait_for(lambda: bool(control.webhook(manager_id)["url"]), STACK_WAIT, "the manager bot's webhook")
        yield started
    finally:
        control.close()
        started.stop()


@pytest.mark.e2e
def test_an_admin_adds_a_bot_through_the_manager_and_a_user_talks_to_it(driver: webdriver.Chrome, stack: Stack) -> None:
    assert stack.manager is not None
    manager_id = int(str(stack.manager["id"]))
    control = httpx.Client(base_url=stack.emulator_url, timeout=10)
    driver.get(f"{stack.emulator_url}/")
    use_user(driver, 81001, "Admin", "en")

    # Mint a token with the page's button.
    driver.find_element(By.ID, "mint-token").click()
    wait(driver, lambda b: b.find_element(By.ID, "minted-token").text, "the minted token")
    token = driver.find_element(By.ID, "minted-token").text
    username = driver.find_element(By.ID, "minted-username").text
    assert TOKEN_SHAPE.fullmatch(token)
    new_bot_id = int(token.split(":")[0])

    # Paste it to the manager bot: the message holding it disappears, a confirmation appears.
    open_chat(driver, manager_id)
    send(driver, f"/addbot {token}")
    wait(
        driver,
        lambda b: any(f"@{username} is active" in t for t in bot_texts(b)),
        "the manager's confirmation",
        STACK_WAIT,
    )
    assert any("Sensitive data stored securely" in t for t in bot_texts(driver))
    wait(driver, lambda b: token not in b.find_element(By.ID, "messages").text, "the token message gone", STACK_WAIT)
    assert driver.find_elements(By.CSS_SELECTOR, "#messages .message.deleted.from-user")
    transcript = control.get(f"/_emulator/bots/{manager_id}/chats/81001/messages").json()
    assert [m["deleted"] for m in transcript if token in m["text"]] == [True]

    # /mybots, then the bot's own button: its details.
    send(driver, "/mybots")

    def listing(b: webdriver.Chrome) -> WebElement | None:
        for node in messages(b):
            if "Your bots" in node.text and node.find_elements(By.CSS_SELECTOR, ".inline-keyboard button"):
                return node
        return None

    listed = wait(driver, listing, "the /mybots listing with buttons", STACK_WAIT)
    assert f"@{username}" in listed.text
    before = len(bot_texts(driver))
    press(driver, int(listed.get_attribute("data-message-id")), f"@{username}")
    wait(
        driver,
        lambda b: len(bot_texts(b)) > before and "Status:" in bot_texts(b)[-1] and f"@{username}" in bot_texts(b)[-1],
        "the bot's details",
        STACK_WAIT,
    )

    # A new user opens the new bot's chat: /start gets its welcome.
    use_user(driver, 81002, "Cli", "en")
    open_chat(driver, new_bot_id)
    send(driver, "/start")
    wait(driver, lambda b: any(f"Hi! I am @{username}" in t for t in bot_texts(b)), "the new bot's welcome", STACK_WAIT)
    control.close()
