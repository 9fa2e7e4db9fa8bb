"""Screenshot of the dashboard of a finished run (the README's picture).

Usage::

    python scripts/dashboard_screenshot.py RUN_DIR OUT.png [--step N] [--agent A]

Serves ``memespread dashboard RUN_DIR`` on a free local port, opens it in Debian's
headless Chromium (``/usr/bin/chromium``, through Playwright; nothing is downloaded),
optionally moves the step slider and picks an agent in the memory inspector, and saves
a full-page PNG. Needs the ``dashboard`` extra.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the dashboard server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the dashboard server did not start in time")


def main() -> int:
    """Serve, open, screenshot; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory")
    parser.add_argument("out", metavar="OUT.png", help="where to save the screenshot")
    parser.add_argument("--step", type=int, help="show this step (default: the last)")
    parser.add_argument("--agent", type=int, help="inspect this agent (default: the most exposed)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium binary")
    parser.add_argument("--width", type=int, default=1500)
    parser.add_argument("--height", type=int, default=1250)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    from experiments.dashboard.server import server_command, server_env

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = subprocess.Popen(
        server_command("127.0.0.1", port),
        env=server_env(args.run_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(url, proc)
        with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
            context = pw.chromium.launch_persistent_context(
                profile,
                executable_path=args.chromium,
                args=CHROMIUM_FLAGS,
                headless=True,
                viewport={"width": args.width, "height": args.height},
            )
            page = context.new_page()
            page.goto(url, timeout=120_000)
            page.wait_for_selector(".memespread-inspector", timeout=120_000)
            page.wait_for_timeout(3000)  # the panel grid animates into place first
            if args.step is not None:
                # A click on the slider's track at the step's position.
                box = page.locator(".memespread-steps .v-slider").bounding_box()
                if box is None:  # Playwright's answer for an element that is not shown
                    raise SystemExit("the page shows no step slider: is the run empty?")
                last = int(
                    page.locator(".memespread-steps [role=slider]").first.get_attribute(
                        "aria-valuemax"
                    )
                    or 0
                )
                x = box["x"] + 2 + (box["width"] - 4) * (args.step / max(last, 1))
                page.mouse.click(x, box["y"] + box["height"] / 2)
                page.wait_for_function(
                    f"document.body.innerText.includes('step {args.step} of')", timeout=60_000
                )
            if args.agent is not None:
                field = page.get_by_label("agent")
                field.fill(str(args.agent))
                field.press("Enter")
                page.wait_for_function(
                    # The inspector's line on the agent's writes (contagion runs retrieve
                    # nothing recorded, so "agent A at step" is only in LLM runs).
                    f"document.body.innerText.includes('agent {args.agent} wrote ')",
                    timeout=60_000,
                )
            page.wait_for_timeout(1500)
            page.screenshot(path=args.out, full_page=True)
            context.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
