"""Command palette provider: every app action (with why it is unavailable) and jumps to nodes."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


class AideCommands(Provider):
    """Offers the app's key actions and `Go to node #N` / `Details of node #N` / `Lineage of node #N`."""

    def _entries(self):
        app = self.app
        over = app.run_over()  # type: ignore[attr-defined]
        if over:  # said once, first, instead of after every run command
            yield "Run over", partial(app.say, over[0].upper() + over[1:], timeout=8), over[0].upper() + over[1:]  # type: ignore[attr-defined]
        for binding in app.AIDE_BINDINGS:  # type: ignore[attr-defined]
            if binding.action in ("quit",):
                continue
            key = binding.key_display or binding.key
            if over and binding.action in app.RUN_ACTIONS:  # type: ignore[attr-defined]
                reason: str | None = "the run is over"
            else:
                reason = app.why_not(binding.action)  # type: ignore[attr-defined]
            help_text = binding.tooltip + (f" — unavailable: {reason}" if reason else "") + f"  [{key}]"
            yield binding.description, partial(app.invoke, binding.action), help_text  # type: ignore[attr-defined]
        model = app.model  # type: ignore[attr-defined]
        for node_id in sorted(model.nodes):
            view = model.nodes[node_id]
            yield (
                f"Go to node #{node_id} ({view.operation}, {view.status})",
                partial(app.goto_node, node_id),
                "Select it in the tree",
            )  # type: ignore[attr-defined]
            yield f"Details of node #{node_id}", partial(app.open_details, node_id), "Plan, code, diff, output, git"  # type: ignore[attr-defined]
            yield (
                f"Lineage of node #{node_id}",
                partial(app.open_lineage, node_id),
                "Steps from its draft to it, with metric changes and diffs",
            )  # type: ignore[attr-defined]

    async def discover(self) -> Hits:
        for text, command, help_text in self._entries():
            if text.startswith(("Go to", "Details of", "Lineage of")):
                continue
            yield DiscoveryHit(text, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, command, help_text in self._entries():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), command, text=text, help=help_text)
