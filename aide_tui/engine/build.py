"""Assembly: a ready-to-run engine from a project directory and settings, or one line saying what to fix."""

from __future__ import annotations

import threading
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, cast

from .. import events as ev
from ..project import Project
from ..run.executor import Executor
from ..search.coder import Coder
from ..settings import Settings
from ..store.git import GitStore
from .core import Engine, Listener

if TYPE_CHECKING:
    from ..search.offline import OfflineCoder


def choose_coder_name(settings: Settings) -> str:
    from ..settings import api_key_present

    if settings.coder == "auto":
        return "llm" if api_key_present() else "offline"
    return settings.coder


def build_executor(settings: Settings) -> Executor:
    """This machine, or a Ray cluster (connected now, so a bad address fails before node 1)."""
    from ..errors import UserError
    from ..run.executor import ExecutorUnavailable

    if settings.executor == "ray":
        from ..run.ray_executor import RayExecutor
        from ..settings import ray_address

        try:
            return RayExecutor(ray_address(settings), settings.node_cpus, settings.node_gpus)
        except ExecutorUnavailable as exc:
            raise UserError(f"--executor ray: {exc}") from None
    from ..run.local import LocalExecutor

    return cast(Executor, LocalExecutor())  # its warm handles are the ones it made (a narrower `submit`)


def build_engine(
    project_dir: Path,
    settings: Settings,
    *,
    resume: bool,
    listener: Listener,
    run_name: str | None = None,
    confirm_card: bool = False,
) -> Engine:
    """Wire a ready-to-run engine: project, lock, run directory, coder, runner, git.

    Raises UserError (one line, exit code 2) for anything the user can fix.
    The instance lock is held until the process exits or `release_lock()`.
    """
    from ..card_resolution import resolve_card
    from ..errors import UserError
    from ..project import InstanceLock
    from ..records import check_repository, claim_run
    from ..run.bwrap import choose_isolation
    from ..run.workspace import list_data_files
    from ..search.preview import build_preview
    from ..search.prompts import PROMPT_NAMES, load_prompt

    project = Project.open(project_dir)
    data_files = list_data_files(project.root)
    if not data_files:
        raise UserError(
            f"{project.root}: no data files next to task.md; put the data in the project (e.g. data/train.csv)"
        )
    lock = InstanceLock(project)
    lock.acquire()
    store: GitStore | None = None
    try:
        store = GitStore(project.root)
        check_repository(store)
        coder_name = choose_coder_name(settings)
        if resume:
            run_name = run_name or project.unfinished_run()
            if run_name is None:
                raise UserError(f"{project.root}: no unfinished run to resume; start a new one with --new")
            if not (project.run_dir(run_name) / "run.json").exists():
                raise UserError(f"{project.root}: no run named {run_name!r} under .aide/runs/")
        run_dir = project.run_dir(run_name) if resume and run_name else None  # a resumed run's directory
        cancel = threading.Event()
        coder: Coder
        offline: OfflineCoder | None = None
        if coder_name == "llm":
            from ..llm.client import LlmClient
            from ..search.operators import LlmCoder
            from ..settings import api_key_present

            if not api_key_present():
                raise UserError("ANTHROPIC_API_KEY is not set; export your key, or use --coder offline")
            client = LlmClient(timeout=settings.llm_timeout, max_retries=settings.llm_retries)
            coder = LlmCoder(client, settings, project_dir=project.root, cancel=cancel)
        else:
            from ..search.offline import OfflineCoder

            coder = offline = OfflineCoder(project.root, data_files, settings.seed)  # given the card below
        isolation, sandbox_notice = choose_isolation(
            settings.sandbox, project.root, Path.home(), settings.sandbox_read, settings.network
        )
        executor = build_executor(settings)  # a cluster that cannot be reached fails here, before the root commit
        preview_path = run_dir / "preview.md" if run_dir else None
        preview = (
            ""
            if preview_path and preview_path.exists()
            else build_preview(project.root, data_files, settings.preview_chars)
        )
        ask_llm = None
        if coder_name == "llm" and not resume:
            from ..search.card_llm import llm_task_card

            ask_llm = partial(
                llm_task_card,
                client,
                settings.feedback_model,
                project.root,
                data_files,
                project.task_text(),
                preview,
                effort=settings.review_effort,
            )
        card = resolve_card(
            project, data_files, settings, run_dir, ask_llm, confirm=confirm_card, offline=coder_name == "offline"
        )
        if not resume:  # last, so a refusal above leaves no root commit behind
            prompts = {name: load_prompt(name, project.root) for name in PROMPT_NAMES} if coder_name == "llm" else {}
            # A card still to be confirmed is recorded in the run directory only, once confirmed.
            run_name = claim_run(project, store, data_files, prompts, None if confirm_card else card.card)
        assert run_name is not None  # resumed or claimed above
        engine = Engine(
            project=project,
            settings=settings,
            run_name=run_name,
            coder=coder,
            executor=executor,
            store=store,
            data_files=data_files,
            listener=listener,
            resume=resume,
            data_preview=preview,
            cancel=cancel,
            isolation=isolation,
            card=card.card,
            card_source=card.source,
            confirm_card=confirm_card,
            card_error=card.fatal,
            usage=card.usage,  # the LLM's card call counts toward the run's cost
        )
        if card.card is not None and offline is not None:
            offline.card = card.card
        if resume:
            engine.records.load()  # a damaged journal stops here, before anything runs (exit 2)
    except BaseException:
        if store is not None:
            store.close()
        lock.release()
        raise
    engine.lock = lock
    if sandbox_notice:
        listener(ev.Notice(sandbox_notice, "warning"))
    for notice in ([card.notice] if card.notice else []) + card.warnings:
        listener(ev.Notice(notice, "warning"))
    if coder_name == "offline":
        # `auto` picks Claude by itself once the key is set; only an explicit `offline` needs changing.
        fix = (
            "Set ANTHROPIC_API_KEY to let Claude write the code."
            if settings.coder == "auto"
            else "Set ANTHROPIC_API_KEY and drop --coder offline (or coder in aide.toml) to let Claude write the code."
        )
        listener(ev.Notice(f"Offline baseline coder in use: scikit-learn templates, not an LLM. {fix}"))
    return engine
