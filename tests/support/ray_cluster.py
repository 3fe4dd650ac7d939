"""A real multi-node Ray cluster on this machine for tests (Ray's own `ray.cluster_utils.Cluster`).

Every node is a real raylet with 1 CPU and a small object store, so a cluster of three fits beside the rest of
the suite; only the processes this cluster started are stopped at the end (never `ray stop`, which would end
any other Ray on the machine).
"""

from __future__ import annotations

OBJECT_STORE = 90 * 1024 * 1024  # Ray's minimum is 75 MiB


def start_cluster(workers: int = 2):
    """A head node and `workers` worker nodes of 1 CPU each, all up."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "object_store_memory": OBJECT_STORE, "include_dashboard": False})
    for _ in range(workers):
        cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
    cluster.wait_for_nodes()
    return cluster


def actor_nodes(name_part: str = "FeaturizeActor") -> list[str]:
    """Node ids (hex) of the live Ray Data actors whose class name mentions `name_part`, from the GCS (the
    state API needs the dashboard, which these clusters do not start)."""
    import ray

    table = ray._private.state.state.actor_table(None)
    return [a["Address"]["NodeID"] for a in table.values()
            if a.get("State") == "ALIVE" and name_part in a.get("ActorClassName", "")]
