"""Upload → narrate → notify → SMTP (aiosmtpd with STARTTLS and AUTH), then follow the email's links.

One API on real PostgreSQL with the narrate and notify workers in-process (QUEUE_URL unset) and MAIL_URL
pointing at the tests' SMTP server, which refuses mail without STARTTLS and login.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.downloads.flow import Gql, Stack, running_stack
from tests.foundation.fixtures import make_settings
from tests.notifications.mail import (
    check_headers,
    links,
    one,
    parts,
    received,
    wait_for_delivery,
    wait_for_mail,
)
from tests.support.servers import SmtpServer

pytestmark = pytest.mark.asyncio(loop_scope="session")

SETTINGS = "{ notificationSettings { __typename ... on NotificationSettings { emailOnReady emailOnFailure } " \
           "... on Error { code } } }"
UPDATE = """mutation($ready: Boolean, $failure: Boolean) {
  updateNotificationSettings(emailOnReady: $ready, emailOnFailure: $failure) {
    __typename ... on NotificationSettings { emailOnReady emailOnFailure } ... on Error { code } } }"""


@pytest.fixture(scope="module")
def smtp(smtpd: SmtpServer, tmp_path_factory: pytest.TempPathFactory) -> SmtpServer:
    smtpd.handler.reset(tmp_path_factory.mktemp("e2e-maildir") / "maildir")
    return smtpd


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(
    smtp: SmtpServer, pg_database: str, signing_key_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    settings = make_settings(
        "postgres", tmp_path_factory.mktemp("notify-e2e"), database_url=pg_database,
        signing_key_file=signing_key_file, mail_url=smtp.url(), mail_from="Talkative Photo <hello@talkative.test>",
    )
    async with running_stack(settings, pg_database=pg_database) as running:
        yield running


@pytest.fixture(scope="module")
def gql(stack: Stack) -> Gql:
    return Gql(stack)


async def test_ready_email_has_headers_both_parts_and_working_links(
    stack: Stack, gql: Gql, smtp: SmtpServer
) -> None:
    user = await gql.register("Ada Lovelace")
    row = await gql.narrate(user, seed=11)
    message = one(await wait_for_mail(smtp, user.email))
    unsubscribe_url = check_headers(message, to=user.email, subject="Your narration is ready",
                                    mail_from="Talkative Photo <hello@talkative.test>")
    assert message["To"] == f"Ada Lovelace <{user.email}>"
    assert row["id"] in message["Message-ID"]
    plain, markup = parts(message)
    assert "Hello Ada Lovelace," in plain and "Hello Ada Lovelace," in markup
    assert row["text"] in plain
    seconds = max(1, round(row["audio"]["durationSeconds"]))
    length = f"({seconds} second{'s' if seconds != 1 else ''} of audio)"
    assert length in plain and length in markup
    assert html.escape(row["text"], quote=False) in markup
    plain_links, html_links = links(plain), links(markup)
    assert plain_links == html_links  # the same audio, text and unsubscribe links in both parts
    audio_url, text_url, unsubscribe_in_body = plain_links
    assert unsubscribe_in_body == unsubscribe_url
    assert "/download/" in audio_url and "/download/" in text_url

    # The links work without logging in and give the narration's bytes.
    audio = await stack.http.get(audio_url)
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"
    assert len(audio.content) == row["audio"]["byteSize"]
    from_api = await stack.http.get(await gql.link(user, row["id"], "AUDIO"))
    assert audio.content == from_api.content
    text = await stack.http.get(text_url)
    assert text.status_code == 200 and text.text == row["text"]

    delivery = await wait_for_delivery(stack.container.sessions, row["id"])
    assert (delivery.status, delivery.attempts, delivery.error) == ("SENT", 1, None)
    assert delivery.dedupe_key == f"notify:{row['id']}:READY:1"
    assert smtp.peers  # accepted only after STARTTLS and AUTH (the server requires both)


async def test_unsubscribe_link_works_without_logging_in(stack: Stack, gql: Gql, smtp: SmtpServer) -> None:
    user = await gql.register("Grace")
    await gql.narrate(user, seed=12)
    message = one(await wait_for_mail(smtp, user.email))
    url = check_headers(message, to=user.email, subject="Your narration is ready",
                        mail_from="Talkative Photo <hello@talkative.test>")

    page = await stack.http.get(url)  # what a person clicking the link sees: a confirmation form
    assert page.status_code == 200 and "<form method=post>" in page.text
    still = (await gql.post(SETTINGS, token=user.token))["notificationSettings"]
    assert still == {"__typename": "NotificationSettings", "emailOnReady": True, "emailOnFailure": True}

    tampered = await stack.http.post(url[:-3] + "AAA", content=b"List-Unsubscribe=One-Click",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert tampered.status_code == 403

    # RFC 8058 one-click: the mail client POSTs this body to the List-Unsubscribe URL, with no cookies.
    done = await stack.http.post(url, content=b"List-Unsubscribe=One-Click",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200, done.text
    off = (await gql.post(SETTINGS, token=user.token))["notificationSettings"]
    assert off == {"__typename": "NotificationSettings", "emailOnReady": False, "emailOnFailure": False}

    later = await gql.narrate(user, seed=13)
    delivery = await wait_for_delivery(stack.container.sessions, later["id"])
    assert delivery.status == "SKIPPED" and delivery.attempts == 0
    assert len(received(smtp, user.email)) == 1  # still only the first email

    # The form on the page posts the token back; doing it again is harmless.
    token = url.split("token=", 1)[1]
    again = await stack.http.post("/unsubscribe", data={"token": token})
    assert again.status_code == 200


async def test_notification_settings_over_graphql(stack: Stack, gql: Gql, smtp: SmtpServer) -> None:
    anonymous = (await gql.post(SETTINGS))["notificationSettings"]
    assert anonymous == {"__typename": "Error", "code": "UNAUTHENTICATED"}
    user = await gql.register("Linus")

    async def update(**values: Any) -> Any:
        return (await gql.post(UPDATE, values, token=user.token))["updateNotificationSettings"]

    def shape(ready: bool, failure: bool) -> dict[str, Any]:
        return {"__typename": "NotificationSettings", "emailOnReady": ready, "emailOnFailure": failure}

    assert (await gql.post(SETTINGS, token=user.token))["notificationSettings"] == shape(True, True)
    assert await update(ready=False) == shape(False, True)
    assert await update(failure=False) == shape(False, False)  # an omitted field stays as it was
    assert await update(failure=True) == shape(False, True)
    assert (await gql.post(SETTINGS, token=user.token))["notificationSettings"] == shape(False, True)

    row = await gql.narrate(user, seed=14)
    delivery = await wait_for_delivery(stack.container.sessions, row["id"])
    assert delivery.status == "SKIPPED"
    assert received(smtp, user.email) == []
