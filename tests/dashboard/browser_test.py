"""The dashboard as a person uses it, in Debian's headless Chromium.

Started by tests/e2e/dashboard.rs against a real daemon (with an API key)
whose model provider is talon-test-llm, scripted in the order of the model
calls made below. Environment: TALON_URL, TALON_API_KEY, TALON_PACKAGE (a
signed plugin package of file_read), TALON_MATRIX_PACKAGE (the Matrix
channel plugin, granted in part), TALON_IRC_PORT (a real ngircd; the IRC channel plugin is
installed with that socket granted), TALON_SCREENSHOTS (a directory). The
web_watch hand is installed too, granted the address of TALON_WATCH_URL (a
local page that never changes) only.

Fails on any console error, any failed request, and any HTTP error other
than the ones a step provokes on purpose. Prints one JSON line of figures
(first-load bytes and time to interactive) last.
"""

import json
import os
import re
import sys
import time

from playwright.sync_api import expect, sync_playwright

URL = os.environ["TALON_URL"]
KEY = os.environ["TALON_API_KEY"]
PACKAGE = os.environ["TALON_PACKAGE"]
MATRIX_PACKAGE = os.environ["TALON_MATRIX_PACKAGE"]
IRC_PORT = os.environ["TALON_IRC_PORT"]
WATCH_URL = os.environ["TALON_WATCH_URL"]
SHOTS = os.environ["TALON_SCREENSHOTS"]
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WAIT = 30_000  # ms: how long an expectation may take to come true

# HTTP errors the steps provoke on purpose: (method, path, status).
EXPECTED_ERRORS = {
    ("GET", "/api/status", 401),   # before signing in, and with the wrong key
    ("POST", "/api/agents", 400),  # the bad manifest
    ("POST", "/api/config/set", 400),  # the setting of the wrong type
    ("POST", "/api/workflows", 400),  # the loop of too many iterations
    ("POST", "/api/channels/irc/configure", 400),  # the channel name without '#'
    ("POST", "/api/hands/web_watch/activate", 400),  # the ftp:// URL
}
problems = []


def watch(page, name):
    def on_console(msg):
        # Chromium reports every HTTP error status as a console error too;
        # those are judged by on_response against EXPECTED_ERRORS instead.
        if msg.type == "error" and "Failed to load resource" not in msg.text:
            problems.append(f"{name}: console error: {msg.text}")

    def on_failed(request):
        # Leaving a page ends its open event stream (and the topology page's
        # first list of events, if still loading): an abort, not a failure.
        if request.failure == "net::ERR_ABORTED" and ("/api/logs/stream" in request.url or "/api/comms/events" in request.url):
            return
        problems.append(f"{name}: request failed: {request.method} {request.url}: {request.failure}")

    def on_response(response):
        if response.status >= 400:
            path = response.url.removeprefix(URL).split("?")[0]
            if (response.request.method, path, response.status) not in EXPECTED_ERRORS:
                problems.append(f"{name}: HTTP {response.status} for {response.request.method} {path}")

    page.on("console", on_console)
    page.on("pageerror", lambda e: problems.append(f"{name}: uncaught: {e}"))
    page.on("requestfailed", on_failed)
    page.on("response", on_response)


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def go(page, title):
    page.get_by_role("navigation", name="Pages").get_by_role("link", name=title, exact=True).click()
    expect(page.get_by_role("heading", level=1, name=title)).to_be_visible()


def sign_in(page):
    page.goto(URL + "/")
    expect(page.get_by_label("API key", exact=True)).to_be_visible()
    page.get_by_label("API key", exact=True).fill("wrong-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That key was refused.")
    page.get_by_label("API key", exact=True).fill(KEY)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1, name="Overview")).to_be_visible()
    assert KEY not in page.url, "the key must never be in the URL"
    assert page.evaluate("sessionStorage.getItem('talon.api_key')") == KEY


def first_load(browser):
    """Bytes over the wire and time to interactive of a cold first load."""
    context = browser.new_context()
    page = context.new_page()
    watch(page, "first-load")
    sizes = []
    page.on("response", lambda r: sizes.append(int(r.headers.get("content-length", "0"))))
    start = time.monotonic()
    page.goto(URL + "/")
    expect(page.get_by_label("API key", exact=True)).to_be_visible()
    interactive_ms = (time.monotonic() - start) * 1000
    context.close()
    return {"first_load_bytes": sum(sizes), "first_load_requests": len(sizes), "time_to_interactive_ms": round(interactive_ms, 1)}


def main():
    expect.set_options(timeout=WAIT)
    problems.clear()
    with sync_playwright() as p:
        # Playwright gives every launch a fresh, empty profile of its own.
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        figures = first_load(browser)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        watch(page, "main")

        # Log in with the API key.
        sign_in(page)
        expect(page.locator(".card").first).to_be_visible()
        shot(page, "login-overview")

        # A bad manifest: the error inline, next to the form.
        go(page, "Agents")
        page.get_by_label("a manifest", exact=True).check()
        page.get_by_label("Manifest (TOML)", exact=True).fill('name = "x"\n[modle]\n')
        page.get_by_role("button", name="Create").click()
        error = page.locator("#create-error")
        expect(error).to_contain_text("unknown key `modle`")
        expect(page.get_by_label("Manifest (TOML)", exact=True)).to_have_attribute("aria-invalid", "true")
        shot(page, "agents-bad-manifest")

        # An agent whose notify_owner calls wait for approval, for the interrupt below.
        page.get_by_label("Manifest (TOML)", exact=True).fill(
            'name = "waiter"\n[model]\nprovider = "openai"\nmodel = "gpt-4o-mini"\n'
            '[capabilities]\ntools = ["notify_owner"]\n[approvals]\ntools = { notify_owner = "ask" }\n')
        page.get_by_role("button", name="Create").click()
        expect(page.get_by_role("status")).to_have_text("Created waiter.")

        # An agent from a template.
        page.get_by_label("a template", exact=True).check()
        page.get_by_label("Template", exact=True).select_option("assistant")
        page.get_by_label("Name", exact=True).fill("helper")
        page.get_by_role("button", name="Create").click()
        expect(page.get_by_role("status")).to_have_text("Created helper.")
        expect(page.get_by_role("cell", name="helper", exact=True)).to_be_visible()
        page.get_by_label("Search", exact=True).fill("help")
        expect(page.get_by_role("link", name="waiter")).to_have_count(0)
        expect(page.get_by_role("link", name="helper")).to_be_visible()
        shot(page, "agents")

        # Edit its identity and tools.
        page.get_by_role("button", name="Edit helper").click()
        page.get_by_label("Vibe", exact=True).fill("calm")
        expect(page.get_by_role("checkbox", name="notify_owner")).to_be_checked()
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_have_text("Saved helper.")

        # Chat: streaming text and a tool call (model calls 1 and 2).
        page.get_by_role("link", name="helper").click()
        expect(page.get_by_role("heading", level=1, name="Chat")).to_be_visible()
        # Attachments: one dropped on the conversation, one picked with the button.
        dropped = page.evaluate_handle(
            "() => { const dt = new DataTransfer();"
            " dt.items.add(new File(['dropped words'], 'dropped.txt', {type: 'text/plain'})); return dt; }")
        page.locator(".conversation").dispatch_event("drop", {"dataTransfer": dropped})
        page.get_by_label("Attach files", exact=True).set_input_files(
            files=[{"name": "picked.txt", "mimeType": "text/plain", "buffer": b"picked words"}])
        expect(page.get_by_role("list", name="Attachments")).to_contain_text("dropped.txt")
        expect(page.get_by_role("list", name="Attachments")).to_contain_text("picked.txt")
        page.get_by_label("Message", exact=True).fill("Leave me a note")
        page.get_by_label("Message", exact=True).press("Enter")
        tool = page.locator("details.tool")
        expect(tool).to_contain_text("notify_owner")
        expect(tool).to_contain_text("done")
        expect(page.locator(".msg.assistant .text")).to_have_text("I left you a note: hello.")
        tool.locator("summary").click()
        expect(tool.locator("pre").first).to_contain_text('"text": "hello"')
        expect(page.get_by_role("button", name="Send")).to_be_visible()
        # The session is listed; a new one starts empty.
        expect(page.locator(".sessions li")).to_have_count(1)
        shot(page, "chat")
        page.get_by_role("button", name="New session").click()
        expect(page.locator(".sessions li")).to_have_count(2)
        expect(page.locator(".msg")).to_have_count(0)

        # Interrupt (model call 3): waiter's call waits for approval; the
        # operator interrupts, then rejects the call in a second tab.
        page.get_by_label("Agent", exact=True).select_option(label="waiter")
        page.get_by_label("Message", exact=True).fill("Tell the owner to wait")
        page.get_by_role("button", name="Send").click()
        expect(page.get_by_role("status")).to_contain_text("awaiting_approval")
        page.get_by_role("button", name="Interrupt").click()
        second = context.new_page()
        watch(second, "second tab")
        sign_in(second)  # sessionStorage belongs to the tab: the key is asked again
        go(second, "Approvals")
        expect(second.get_by_role("cell", name="waiter", exact=True)).to_be_visible()
        shot(second, "approvals")
        second.get_by_role("button", name="Reject").click()
        expect(second.get_by_role("cell", name="rejected", exact=True)).to_be_visible()
        second.close()
        expect(page.locator(".msg.assistant")).to_contain_text("Turn interrupted.")
        expect(page.locator("details.tool")).to_contain_text("failed")

        # A workflow of two steps, defined in the form, run from the page;
        # its steps get the model server's default reply.
        go(page, "Workflows")
        form = page.locator("form", has=page.get_by_role("heading", name="New workflow"))
        form.locator("#wf-name").fill("review")
        form.get_by_label("Description", exact=True).fill("two steps")
        step1 = form.get_by_role("group", name="Step 1")
        step1.get_by_label("Name", exact=True).fill("draft")
        step1.get_by_label("Prompt", exact=False).fill("Draft: {{input}}")
        # The daemon refuses a loop of 500 iterations (at most 100): its
        # reason is shown inline.
        form.get_by_role("button", name="Add a step").click()
        step2 = form.get_by_role("group", name="Step 2")
        step2.get_by_label("Name", exact=True).fill("check")
        step2.get_by_label("Mode", exact=True).select_option("loop")
        step2.get_by_label("At most (iterations)", exact=True).fill("500")
        step1.get_by_label("Agent", exact=True).select_option(label="helper")
        step2.get_by_label("Agent", exact=True).select_option(label="helper")
        form.get_by_role("button", name="Create").click()
        expect(page.locator("#wf-error")).to_contain_text("max_iterations")
        step2.get_by_label("Mode", exact=True).select_option("sequential")
        step2.get_by_label("Prompt", exact=False).fill("Check: {{input}}")
        shot(page, "workflow-form")
        form.get_by_role("button", name="Create").click()
        expect(page.get_by_role("status")).to_have_text("Created review.")
        expect(page.get_by_role("cell", name="two steps", exact=True)).to_be_visible()
        page.once("dialog", lambda dialog: dialog.accept("the plan"))
        page.get_by_role("button", name="Run review").click()
        steps = page.locator("ol.steps li")
        expect(steps).to_have_count(2)
        expect(steps.nth(0)).to_contain_text("draft")
        expect(steps.nth(1)).to_contain_text("check")
        expect(steps.filter(has_text="ok")).to_have_count(2)
        shot(page, "workflows")

        # Install a plugin package and toggle it.
        go(page, "Plugins")
        page.get_by_label("Package file", exact=True).set_input_files(PACKAGE)
        page.get_by_label("Grant", exact=True).select_option("all")
        page.get_by_role("button", name="Install").click()
        expect(page.get_by_role("status")).to_have_text("Installed file_read.")
        switch = page.get_by_role("switch", name="file_read enabled")
        expect(switch).to_have_attribute("aria-checked", "true")
        switch.click()
        expect(switch).to_have_attribute("aria-checked", "false")
        switch.click()
        expect(switch).to_have_attribute("aria-checked", "true")
        expect(page.get_by_role("row").filter(has_text="file_read")).to_contain_text("fs: workspace")
        shot(page, "plugins")

        # A partial grant: the Matrix channel plugin installed with nothing,
        # then given its memory keys but not the network it requests.
        page.get_by_label("Package file", exact=True).set_input_files(MATRIX_PACKAGE)
        page.get_by_label("Grant", exact=True).select_option("none")
        page.get_by_role("button", name="Install").click()
        expect(page.get_by_role("status")).to_have_text("Installed matrix.")
        page.get_by_role("button", name="Change matrix's grants").click()
        grants = page.locator("form", has=page.get_by_role("heading", name="Grants of matrix"))
        expect(grants.get_by_role("checkbox")).to_have_count(2)
        grants.get_by_role("checkbox", name="memory: matrix.*").check()
        shot(page, "plugin-grants")
        grants.get_by_role("button", name="Save grants").click()
        expect(page.get_by_role("status")).to_have_text("Saved matrix's grants.")
        granted = page.get_by_role("row").filter(has_text="matrix").get_by_role("cell").nth(3)
        expect(granted).to_contain_text("memory: matrix.*")
        expect(granted).not_to_contain_text("network")

        # Channels: IRC configured from the form made of its schema, against
        # a real ngircd; a value the schema refuses first, shown inline.
        go(page, "Channels")
        form = page.locator("form", has=page.get_by_role("heading", name="Configure a channel"))
        expect(form.get_by_label("Channel plugin", exact=True)).to_have_value("irc")
        expect(form.get_by_label("password", exact=True)).to_have_attribute("type", "password")
        form.get_by_label("Default agent", exact=True).select_option(label="helper")
        form.get_by_label("server (required)", exact=True).fill("127.0.0.1")
        form.get_by_label("port", exact=True).fill(IRC_PORT)
        form.get_by_label("nick (required)", exact=True).fill("talonbot")
        form.get_by_label("channels (one per line)", exact=True).fill("talon")
        form.get_by_role("button", name="Add a binding").click()
        form.get_by_label("Sender", exact=True).fill("alice")
        form.get_by_role("group", name="Bindings (per chat or sender; the more specific wins)").get_by_label("Agent", exact=True).select_option(label="waiter")
        form.get_by_role("button", name="Save").click()
        expect(page.locator("#configure-error")).to_contain_text("channels")
        form.get_by_label("channels (one per line)", exact=True).fill("#talon")
        form.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status")).to_have_text("Configured irc.")
        expect(page.get_by_role("table", name="Configured channels").get_by_text("connected", exact=True)).to_be_visible()
        expect(page.get_by_role("table", name="Configured channels")).to_contain_text("helper (+1 bindings)")
        page.get_by_role("button", name="Test irc").click()
        page.get_by_role("button", name="Test now").click()
        expect(page.locator(".verdict")).to_contain_text("Reachable")
        page.get_by_role("button", name="Close").click()
        page.get_by_role("button", name="Dead letters of irc").click()
        expect(page.get_by_text("No dead letters in irc.")).to_be_visible()
        shot(page, "channels")
        # Editing shows the stored values; then off and on again.
        page.get_by_role("button", name="Configure irc").click()
        edit = page.locator("form", has=page.get_by_role("heading", name="Configure irc"))
        expect(edit.get_by_label("nick (required)", exact=True)).to_have_value("talonbot")
        edit.get_by_role("button", name="Cancel").click()
        switch = page.get_by_role("switch", name="irc enabled")
        switch.click()
        expect(switch).to_have_attribute("aria-checked", "false")
        switch.click()
        expect(switch).to_have_attribute("aria-checked", "true")
        expect(page.get_by_role("table", name="Configured channels").get_by_text("connected", exact=True)).to_be_visible()
        # The agent page lists what an agent sent through channels.
        go(page, "Agents")
        page.get_by_role("button", name="Deliveries of helper").click()
        expect(page.get_by_text("helper has sent nothing through a channel.")).to_be_visible()

        # A cron job that fires (its model calls get the server's default reply).
        go(page, "Schedules")
        page.get_by_label("Name", exact=True).fill("tick")
        page.get_by_label("Agent", exact=True).select_option(label="helper")
        page.get_by_label("Schedule", exact=True).fill("every 1s")
        page.get_by_label("Prompt", exact=True).fill("tick")
        page.get_by_role("button", name="Create job").click()
        runs = page.get_by_role("table", name="Recent runs")
        expect(runs.get_by_role("cell", name="ok", exact=True).first).to_be_visible()
        page.get_by_role("button", name="Pause tick").click()
        expect(page.get_by_role("button", name="Resume tick")).to_be_visible()
        # A trigger, from its form (it fires when an agent is terminated,
        # which this test never does).
        page.get_by_label("Agent it prompts", exact=True).select_option(label="helper")
        page.get_by_label("Fires on", exact=True).select_option("agent_terminated")
        page.get_by_role("button", name="Create trigger").click()
        expect(page.get_by_role("cell").filter(has_text="agent_terminated")).to_be_visible()
        shot(page, "schedules")

        # The audit chain, verified.
        go(page, "Audit")
        page.get_by_role("button", name="Verify the chain").click()
        expect(page.get_by_role("status")).to_contain_text("Chain valid")
        shot(page, "audit")

        # Hands: web_watch (installed by the Rust side) activated from the
        # form made of its settings schema, a URL the schema refuses first.
        go(page, "Hands")
        hands = page.get_by_role("table", name="Installed hands")
        expect(hands.get_by_role("row").filter(has_text="web_watch")).to_contain_text("loaded")
        page.get_by_role("button", name="Check web_watch's dependencies").click()
        deps = page.locator("section.panel", has=page.get_by_role("heading", name="Dependencies of web_watch"))
        expect(deps.get_by_role("status")).to_contain_text("Missing: network:*")
        expect(deps.get_by_role("row").filter(has_text="last_check")).to_contain_text("yes")
        form = page.locator("form", has=page.get_by_role("heading", name="Activate a hand"))
        expect(form.get_by_label("Hand", exact=True)).to_have_value("web_watch")
        urls = form.get_by_label("urls (one per line) (required)", exact=True)
        urls.fill("ftp://example.com")
        form.get_by_role("button", name="Activate").click()
        expect(page.locator("#activate-error")).to_contain_text("settings.urls[0]")
        shot(page, "hands-bad-setting")
        urls.fill(WATCH_URL)
        form.get_by_label("interval_secs", exact=True).fill("60")
        form.get_by_role("button", name="Activate").click()
        expect(page.get_by_role("status").filter(has_text="Activated")).to_contain_text("Activated Web page watcher")
        expect(page.locator("#activate-error")).to_have_count(0)
        instance = page.get_by_role("table", name="Instances").get_by_role("row").filter(has_text="Web page watcher")
        expect(instance).to_contain_text("active")
        # Its first tick fetched the page: the hand's own figures say so.
        instance.get_by_role("button", name=re.compile("^Stats of ")).click()
        stats = page.locator("section.panel", has=page.get_by_role("heading", name=re.compile("^Stats of Web page watcher")))
        expect(stats.locator(".card", has=page.locator("dt", has_text=re.compile("^checks$"))).locator("dd")).to_have_text("1")
        expect(stats.locator(".card", has=page.locator("dt", has_text=re.compile("^errors$"))).locator("dd")).to_have_text("0")
        expect(stats).to_contain_text('"interval_secs": 60')
        shot(page, "hands")
        instance.get_by_role("button", name=re.compile("^Pause ")).click()
        expect(instance.get_by_role("button", name=re.compile("^Resume "))).to_be_visible()
        expect(instance).to_contain_text("paused")
        instance.get_by_role("button", name=re.compile("^Resume ")).click()
        expect(instance.get_by_role("button", name=re.compile("^Pause "))).to_be_visible()
        instance.get_by_role("button", name=re.compile("^Stats of ")).click()
        expect(stats).to_have_count(0)
        page.once("dialog", lambda dialog: dialog.accept())
        instance.get_by_role("button", name=re.compile("^Deactivate ")).click()
        expect(page.get_by_text("No instances: activate a hand above.")).to_be_visible()

        # Topology: helper sends waiter a message from the form (waiter's
        # turn gets the model server's default reply); the link appears in
        # the graph, in its table and as a comms event.
        go(page, "Topology")
        agents = page.get_by_role("table", name="Agents")
        expect(agents.get_by_role("cell", name="helper", exact=True)).to_be_visible()
        expect(agents.get_by_role("cell", name="waiter", exact=True)).to_be_visible()
        expect(page.get_by_text("No agent has sent another a message yet.")).to_be_visible()
        send = page.locator("form", has=page.get_by_role("heading", name="Send a message between agents"))
        send.get_by_label("From", exact=True).select_option(label="helper")
        send.get_by_label("To", exact=True).select_option(label="waiter")
        send.get_by_label("Message", exact=True).fill("Are you there?")
        send.get_by_role("button", name="Send").click()
        expect(send.get_by_role("status")).to_contain_text("waiter answered:")
        links = page.get_by_role("table", name="Links")
        expect(links.get_by_role("row").filter(has_text="helper")).to_contain_text("waiter")
        expect(page.get_by_role("img", name=re.compile("^Agent topology"))).to_have_attribute(
            "aria-label", re.compile("helper to waiter \\(peer\\)"))
        expect(page.locator("svg .edge")).to_have_count(1)
        events = page.get_by_role("table", name="Comms events, newest first")
        expect(events.get_by_role("row").filter(has_text="agent_message")).to_contain_text("helper")
        shot(page, "topology")

        # Every other page renders, at both widths and in dark mode.
        for title, name in [("Usage", "usage"), ("Logs", "logs"), ("Settings", "settings"),
                            ("Tasks & goals", "tasks"), ("Overview", "overview")]:
            go(page, title)
            if name == "usage":
                expect(page.locator("figure.chart svg").first).to_be_visible()
            if name == "logs":
                expect(page.get_by_role("table").get_by_role("cell", name="agent_spawned").first).to_be_visible()
            if name == "settings":
                # A value of the wrong type: the daemon's reason, inline.
                page.get_by_label("Key (dotted)").fill("budget.daily_limit_usd")
                page.get_by_label("Value (JSON or text)").fill("lots")
                page.get_by_role("button", name="Save").click()
                expect(page.locator("#set-error")).to_be_visible()
                expect(page.get_by_label("Value (JSON or text)")).to_have_attribute("aria-describedby", "set-error")
                page.get_by_label("Key (dotted)").fill("budget.daily_limit_usd")
                page.get_by_label("Value (JSON or text)").fill("5")
                page.get_by_role("button", name="Save").click()
                expect(page.get_by_role("status").filter(has_text="Saved")).to_be_visible()
            shot(page, name)
        page.set_viewport_size({"width": 390, "height": 844})
        go_narrow = page.get_by_role("button", name="Menu")
        go_narrow.click()
        page.get_by_role("navigation", name="Pages").get_by_role("link", name="Agents", exact=True).click()
        expect(page.get_by_role("heading", level=1, name="Agents")).to_be_visible()
        shot(page, "agents-390px")
        page.get_by_role("button", name="Menu").click()
        page.get_by_role("navigation", name="Pages").get_by_role("link", name="Channels", exact=True).click()
        expect(page.get_by_role("heading", level=1, name="Channels")).to_be_visible()
        expect(page.get_by_role("table", name="Configured channels")).to_be_visible()
        shot(page, "channels-390px")
        page.get_by_role("button", name="Menu").click()
        page.get_by_role("navigation", name="Pages").get_by_role("link", name="Topology", exact=True).click()
        expect(page.get_by_role("table", name="Links").get_by_role("row").filter(has_text="helper")).to_be_visible()
        shot(page, "topology-390px")
        page.emulate_media(color_scheme="dark")
        page.set_viewport_size({"width": 1280, "height": 900})
        go(page, "Channels")
        expect(page.get_by_role("table", name="Configured channels")).to_be_visible()
        shot(page, "channels-dark")
        go(page, "Topology")
        expect(page.locator("svg .edge")).to_have_count(1)
        shot(page, "topology-dark")
        go(page, "Usage")
        shot(page, "usage-dark")
        # Keyboard only: the skip link is the first stop and lands on the page.
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        # And the navigation works from the keyboard: Tab to a page link, Enter.
        page.get_by_role("navigation", name="Pages").get_by_role("link", name="Audit", exact=True).focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", level=1, name="Audit")).to_be_focused()

        context.close()
        browser.close()
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
