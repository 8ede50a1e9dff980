"""The web chat's wiring without a server: the MCP server's settings follow the app's, uploads the build's size limit."""

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


def test_uploads_are_never_allowed_above_the_size_a_build_reads() -> None:
    from qa.web import settings as web_settings

    mib = 1024 * 1024
    assert web_settings.parse_config([], {"QA_MAX_UPLOAD_MB": "50", "QA_MAX_FILE_MB": "2"}).max_upload_bytes == 2 * mib
    assert web_settings.parse_config([], {"QA_MAX_UPLOAD_MB": "1", "QA_MAX_FILE_MB": "2"}).max_upload_bytes == mib
    assert web_settings.parse_config([], {"QA_MAX_FILE_MB": "0.5"}).max_upload_bytes == mib // 2
    assert web_settings.parse_config([], {}).max_upload_bytes == 20 * mib
