"""The fixture builder stands in for lepton-build in the e2e cluster: it must take the
command line the operator gives a build Job (a flag it did not know failed every
fixture build of the e2e suite once)."""

from __future__ import annotations

import json

from lepton_e2e import fixture_builder
from lepton_operator.api.spec import parse_spec
from lepton_operator.resources import build


def test_the_fixture_builder_takes_the_operators_build_command_line(spec, config) -> None:
    job = build.job(
        "minilm", "ml", parse_spec(spec), config.pools[0], "abc123", "builder:1", 60, 1.5
    )
    args = fixture_builder.parse_args(job["spec"]["template"]["spec"]["containers"][0]["args"])
    assert json.loads(args.request)["model"]["uri"] == spec["model"]["uri"]
