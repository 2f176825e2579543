"""The CLI's errors: `CLIError`, and the root group that turns every failure into one `error: ...` line.

No traceback reaches the user (set FLOE_DEBUG=1 to see one for an unexpected error).
"""

from __future__ import annotations

import errno
import os
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from floe.cli.output import print_error
from floe.client.errors import FloeError

try:  # typer >= 0.2x vendors click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer on real click
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # type: ignore[no-redef]


class CLIError(FloeError):
    """A failure the CLI reports as one line (bad input, a cluster that ended *_FAILED, ...)."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def _describe_os_error(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    return exc.strerror or str(exc)


class FloeGroup(TyperGroup):
    """The root group: turns every error below it into one `error: ...` line."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            self._usage_error(exc)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, NoArgsIsHelpError):
            raise
        except UsageError as exc:
            self._usage_error(exc)
        except ClickException as exc:
            print_error(exc.format_message())
            raise typer.Exit(exc.exit_code) from None
        except CLIError as exc:
            print_error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except FloeError as exc:
            print_error(str(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            print_error("interrupted")
            raise typer.Exit(130) from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # `floe ... | head`: typer exits quietly on a closed pipe
            print_error(_describe_os_error(exc))
            raise typer.Exit(1) from None
        except Exception as exc:
            if os.environ.get("FLOE_DEBUG"):
                raise
            print_error(f"unexpected {type(exc).__name__}: {exc} (set FLOE_DEBUG=1 for a traceback)")
            raise typer.Exit(1) from None

    @staticmethod
    def _usage_error(exc: UsageError) -> NoReturn:
        where = exc.ctx.command_path if exc.ctx is not None else "floe"
        print_error(f"{exc.format_message()} (see `{where} --help`)")
        raise typer.Exit(exc.exit_code) from None
