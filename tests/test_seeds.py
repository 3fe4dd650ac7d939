"""Seeds are part of every replay key: these values were computed by the three copies this module replaced
(quality.solve.sample_seed, local_decode.row_seed, loop.steps.derive_seed). If one changes, every recorded
call of every existing run misses the replay log and is paid for again."""

from __future__ import annotations

from prism_agent.seeds import derive_seed, row_seed


def test_derived_seeds_are_pinned():
    assert derive_seed(0, "s-1") == 8059042625355728756  # a solver's seed for sample "s-1"
    assert row_seed(7, 3) == 6622938940130725384  # completion 3 of a request seeded 7
    assert derive_seed(0, "cluster", 2) == 4211794228907006522  # round 2's k-means seed
    assert derive_seed(5, 1, 0) == 8058400282847382081  # request 0 of round 1, run seed 5


def test_seeds_fit_every_backend_and_unseeded_requests_stay_random():
    assert all(0 <= derive_seed(i, "x") < 2**63 for i in range(200))
    assert row_seed(None, 0) != row_seed(None, 0)
