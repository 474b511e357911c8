"""Session fixtures for the tests against a real ComfyUI server and its web frontend (headless Chromium).

``comfyui_install`` runs scripts/setup_comfyui.sh once (a no-op when done); set DREAMDANCE_SKIP_COMFYUI=1 to skip
these tests instead. DREAMDANCE_COMFYUI_DIR (+ DREAMDANCE_COMFYUI_PYTHON) points them at an existing ComfyUI.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from scripts.comfyui_harness import (
    APP_READY,
    BUNDLED_FRONTEND,
    CHROMIUM,
    CHROMIUM_ARGS,
    FRONTENDS,
    VUE_NODES_SETTING,
    ComfyInstall,
    ComfyServer,
    ServerDirs,
    frontend_root,
    run_setup_script,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that need ComfyUI (``-m "not comfyui"`` deselects them) and those that drive the browser."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "comfyui_install" in fixtures:
            item.add_marker(pytest.mark.comfyui)
        if "browser_page" in fixtures:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def comfyui_install() -> ComfyInstall:
    """ComfyUI installed by scripts/setup_comfyui.sh (or the one DREAMDANCE_COMFYUI_DIR names)."""
    if os.environ.get("DREAMDANCE_SKIP_COMFYUI") == "1":
        pytest.skip("DREAMDANCE_SKIP_COMFYUI=1: the real-ComfyUI tests are switched off")
    print(run_setup_script())
    return ComfyInstall.from_env()


@pytest.fixture(scope="session")
def comfy_server(comfyui_install: ComfyInstall, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyServer]:
    """A running ComfyUI with this pack loaded through a renamed folder link; stopped after the session."""
    server = ComfyServer(comfyui_install, ServerDirs(tmp_path_factory.mktemp("comfyui")))
    try:
        seconds = server.start()
        print(f"ComfyUI up on {server.url} after {seconds:.1f} s; log: {server.dirs.log}")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", params=FRONTENDS, ids=[f"frontend-{name}" for name in FRONTENDS])
def frontend(request: pytest.FixtureRequest) -> str:
    """Which frontend the browser tests drive: the bundled one, then the newest comfyui-frontend-package."""
    return request.param


@pytest.fixture(scope="session")
def frontend_server(frontend: str, comfy_server: ComfyServer, comfyui_install: ComfyInstall,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyServer]:
    """The server that serves ``frontend``: ``comfy_server`` for the bundled one, else a second server (one per
    session: the browser tests are grouped by frontend) started with --front-end-root."""
    # The files the shipped workflows load are in each server's input folder because the pack copies its example
    # inputs there on import (nodes/_example_inputs.py): the tests write none.
    if frontend == BUNDLED_FRONTEND:
        yield comfy_server
        return
    server = ComfyServer(comfyui_install, ServerDirs(tmp_path_factory.mktemp(f"comfyui-frontend-{frontend}")),
                         front_end_root=frontend_root(frontend))
    try:
        seconds = server.start()
        print(f"ComfyUI with frontend {frontend} up on {server.url} after {seconds:.1f} s; log: {server.dirs.log}")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _browser(comfyui_install: ComfyInstall):
    """Debian's Chromium driven by Playwright (one browser per session)."""
    from playwright.sync_api import sync_playwright  # installed by scripts/setup_comfyui.sh

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_frontend(browser, server: ComfyServer, vue_nodes: bool = False):
    """A new page (in its own browser context) on ``server``'s frontend, ready (app, graph and canvas up), first-run
    popups dismissed, nodes drawn on the LiteGraph canvas (classic) or as Vue components (``vue_nodes``: Nodes 2.0).
    The mode is a user setting stored by the server: it is set before the page loads, so each page gets its own."""
    # Workflows are checked against the frontend's schema on load (the newest frontend has it off by default).
    for setting, value in ((VUE_NODES_SETTING, vue_nodes), ("Comfy.Validation.Workflows", True)):
        status, body = server.post(f"/settings/{setting}", value)
        assert status == 200, body
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    context.add_init_script("localStorage.setItem('vueNodesBannerDismissed', 'true')")
    page = context.new_page()
    page.goto(server.url, wait_until="domcontentloaded")  # never networkidle: the websocket stays open
    page.wait_for_function(APP_READY, timeout=60_000)
    mode = page.evaluate(f"() => app.extensionManager.setting.get('{VUE_NODES_SETTING}')")
    assert mode is vue_nodes, f"{VUE_NODES_SETTING} is {mode!r} in the page, {vue_nodes!r} was stored"
    return page


@pytest.fixture
def browser_page(_browser, frontend_server: ComfyServer):
    """A fresh page on the frontend under test (classic mode), closed after the test."""
    page = open_frontend(_browser, frontend_server)
    yield page
    page.context.close()
