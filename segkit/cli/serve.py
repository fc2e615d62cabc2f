"""``segkit-serve``: the HTTP API of :mod:`segkit.serve` for one checkpoint, run by uvicorn."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from segkit.api import load
from segkit.cli._hydra import CONFIG_DIR

log = logging.getLogger("segkit.serve")


def serve(cfg: DictConfig) -> None:
    """Load ``cfg.ckpt_path`` and serve it on ``cfg.host:cfg.port`` until SIGINT or SIGTERM."""
    import uvicorn

    from segkit.serve import ServeSettings, create_app

    settings = ServeSettings(**OmegaConf.to_container(cfg.serve, resolve=True))
    model = load(cfg.ckpt_path, device=cfg.device, trust_config=cfg.trust_config)
    app = create_app(model, settings, name=cfg.name or Path(cfg.ckpt_path).name)
    server = uvicorn.Server(
        uvicorn.Config(app, host=cfg.host, port=int(cfg.port), log_level=cfg.log_level)
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM (the batcher thread stops in the app's
    # lifespan), then restores the handlers it found and raises the signal again. Handlers that
    # only record it make that second delivery a normal exit (status 0) instead of death by
    # signal or a KeyboardInterrupt traceback.
    # A signal before uvicorn takes over (while it starts) stops it as soon as it has started.
    received: list[int] = []

    def record(signum: int, _frame: object) -> None:
        received.append(signum)
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, record)
    server.run()
    if received:
        log.info("stopped by %s", signal.Signals(received[0]).name)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="serve")
def main(cfg: DictConfig) -> None:
    serve(cfg)


if __name__ == "__main__":
    main()
