"""The library's own structure: inference never imports training, and no module imports itself in a circle.

grimp (import-linter's graph) sees every import, the ones inside functions included: a lazy
import that closes a circle is still a circle, and the reason the old `training/common.py` and
`training/reward.py` could only import each other from inside functions.
"""

from __future__ import annotations

import grimp
import pytest

INFERENCE = ("rlhf.models", "rlhf.scoring", "rlhf.generation", "rlhf.sampling", "rlhf.chat", "rlhf.evaluation", "rlhf.safety")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("rlhf")


@pytest.mark.parametrize("module", INFERENCE)
def test_inference_never_imports_training(graph: grimp.ImportGraph, module: str) -> None:
    assert module in graph.modules, f"{module} is missing"
    chain = graph.find_shortest_chain(importer=module, imported="rlhf.training")
    assert chain is None, f"{module} reaches the training package: {' -> '.join(chain)}"


def test_no_import_cycles_in_rlhf(graph: grimp.ImportGraph) -> None:
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if imported == importer or not imported.startswith("rlhf"):
                continue
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.append(" -> ".join((importer, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_graph_sees_lazy_imports(graph: grimp.ImportGraph) -> None:
    # scoring.score_pairs imports nothing lazily any more, but rl_reward imports the scorer inside
    # load_reward: the cycle test above is only meaningful if such imports are in the graph.
    assert "rlhf.scoring" in graph.find_modules_directly_imported_by("rlhf.training.rl_reward")
