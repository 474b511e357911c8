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
    CHROMIUM,
    CHROMIUM_ARGS,
    ComfyInstall,
    ComfyServer,
    ServerDirs,
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


@pytest.fixture(scope="session")
def _browser(comfy_server: ComfyServer):
    """Debian's Chromium driven by Playwright (one browser per session)."""
    from playwright.sync_api import sync_playwright  # installed by scripts/setup_comfyui.sh

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(_browser, comfy_server: ComfyServer):
    """A fresh page on the ComfyUI frontend, ready (app, graph and canvas up), with first-run popups dismissed."""
    context = _browser.new_context(viewport={"width": 1600, "height": 1000})
    context.add_init_script("localStorage.setItem('vueNodesBannerDismissed', 'true')")
    page = context.new_page()
    page.goto(comfy_server.url, wait_until="domcontentloaded")  # never networkidle: the websocket stays open
    page.wait_for_function(APP_READY, timeout=60_000)
    yield page
    context.close()
