"""``python -m lepton_e2e {up|down|status|pod-runner|demo|argocd-up|argocd-down|
check-image}``: the local cluster's CLI (``argocd-up``, ``argocd-down``: real Argo CD
beside it; ``check-image operator|builder ARCHIVE``: a built image run by
``image_checks``). The Go builds are ``python -m lepton_e2e.prebuild``, which
needs no venv."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading

from lepton_e2e import argocd, argocd_build, binaries, shipped_images
from lepton_e2e.cluster import Cluster


def _pod_runner() -> None:
    from kubernetes import config

    from lepton_e2e.images import load_image_table
    from lepton_e2e.podrunner import PodRunner

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cluster = Cluster()
    api = config.new_client_from_config(str(cluster.config.kubeconfig))
    runner = PodRunner(
        api,
        load_image_table(),
        cluster.config.network,
        cluster.dir,
        (cluster.dir / "cluster-id").read_text(),
        cluster.config.apiserver_port,
    )
    threading.Thread(target=runner.provision_forever, name="provisioner", daemon=True).start()
    runner.run_forever()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["demo"]:
        from lepton_e2e import demo

        return demo.main(argv[1:])
    if argv[:1] == ["check-image"]:
        from lepton_e2e import image_checks

        return image_checks.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m lepton_e2e", description=__doc__)
    parser.add_argument(
        "command",
        choices=[
            *("up", "down", "status", "pod-runner", "demo"),
            *("argocd-up", "argocd-down"),
        ],
    )
    args = parser.parse_args(argv)
    cluster = Cluster()
    if args.command == "up":
        shipped_images.ensure_built()  # a chart installed on this cluster runs from them
        kubeconfig = cluster.up()
        timings_file = cluster.dir / "timings.json"
        if timings_file.exists():
            timings = json.loads(timings_file.read_text())
            print(
                f"cluster up: built in {timings['build_s']} s, ready in "
                f"{timings['start_to_ready_s']} s",
                file=sys.stderr,
            )
        print(f"export KUBECONFIG={kubeconfig}")
        print(f"export PATH={binaries.bin_dir()}:$PATH")
    elif args.command == "argocd-up":
        kubeconfig = cluster.up()
        argocd.ArgoCD(cluster).up()
        print(f"Argo CD {argocd_build.VERSION} up in namespace {argocd.NAMESPACE}", file=sys.stderr)
        print(f"destination server for Applications: {cluster.config.server}", file=sys.stderr)
        print(f"export KUBECONFIG={kubeconfig}")
    elif args.command == "argocd-down":
        argocd.ArgoCD(cluster).down()
    elif args.command == "down":
        cluster.down()
    elif args.command == "status":
        up = cluster.is_up()
        print("up" if up else "down")
        return 0 if up else 1
    else:
        _pod_runner()
    return 0


if __name__ == "__main__":
    sys.exit(main())
