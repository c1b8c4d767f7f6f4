"""``init`` and ``templates``: a ready workspace and its four templates."""

from __future__ import annotations

from pathlib import Path

import click

from ..templates import write_templates
from ..workspace import init_templates, init_workspace
from .base import _errors, _workspace, cli, global_options, root_option


@cli.command()
@root_option
@global_options
def init(root: Path) -> None:
    """创建工作区:文件夹、refundflow.toml 和四张模板 (create a ready workspace).

    Creates inbox/, outbox/<role>/, refundsheets/, templates/ with the four templates, and a
    commented refundflow.toml; fill in its [roster] at once. Never overwrites a file that
    exists; says what it created.

    Example:

    \b
        refundflow init --root /srv/share/refunds
    """
    with _errors():
        root.mkdir(parents=True, exist_ok=True)
        workspace = _workspace(root, check=False)
        created = init_workspace(workspace)
        created += init_templates(workspace)
    for path in created:
        click.echo(f"已创建 {path.relative_to(workspace.root)}")
    if not created:
        click.echo(f"工作区 {workspace.root} 已完整,无需创建")


@cli.command()
@root_option
@global_options
def templates(root: Path) -> None:
    """重新生成四张 Excel 模板到 templates/ (regenerate the four templates).

    退款申请表, 客服部值班交接单, 客服退单统计表, 财务退单统计表, from refundflow.toml (banks,
    faults, shifts); run it after changing those. Overwrites the files in templates/.

    Example:

    \b
        refundflow templates --root /srv/share/refunds
    """
    with _errors():
        workspace = _workspace(root, check=False)
        workspace.templates.mkdir(parents=True, exist_ok=True)
        written = write_templates(workspace.templates, workspace.config)
    for path in written:
        click.echo(f"已生成 {path.relative_to(workspace.root)}")
