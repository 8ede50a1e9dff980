"""The web chat's wiring without a server: the MCP server's settings follow the app's."""

from __future__ import annotations


def test_the_mcp_server_keeps_the_apps_bind_and_login() -> None:
    from qa.web import chat
    from qa.web import settings as web_settings

    guarded = web_settings.parse_config(
        ["--host", "0.0.0.0", "--allow-upload", "--mcp"], {"QA_ADMIN_PASSWORD": "s3cret"}
    )
    options = chat.launch_options(guarded)
    assert options["mcp_server"] is True and options["server_name"] == "0.0.0.0" and options["auth"] is not None
    assert chat.launch_options(web_settings.parse_config([], {}))["mcp_server"] is False
