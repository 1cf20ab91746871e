"""Errors that stand alone: each names the model, the stage, the cause and the fix.

pip hides a build backend's output unless asked, so the one message a user sees
must be enough to act on.
"""

from __future__ import annotations


class WasmBuildError(Exception):
    """A failure the user can fix: bad configuration, bad model, missing tool."""

    def __init__(
        self,
        message: str,
        *,
        fix: str | None = None,
        model: str | None = None,
        stage: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.model = model
        self.stage = stage

    def with_context(self, *, model: str | None = None, stage: str | None = None) -> WasmBuildError:
        """Fill in the model and stage when the raiser did not know them."""
        self.model = self.model or model
        self.stage = self.stage or stage
        return self

    def __str__(self) -> str:
        where = " ".join(
            part
            for part in (
                f"model '{self.model}'" if self.model else "",
                f"[{self.stage}]" if self.stage else "",
            )
            if part
        )
        text = f"{where}: {self.message}" if where else self.message
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class ConfigError(WasmBuildError):
    """Invalid `[tool.wasm-build]` table, command-line option or config-setting."""


class ToolchainError(WasmBuildError):
    """No usable C compiler / wasm-ld / archiver for wasm32-wasi."""


class SmokeTestError(WasmBuildError):
    """The wasm artifact disagrees with the native reference."""
