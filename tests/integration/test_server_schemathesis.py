"""Property-based fuzzing of the live server from its own OpenAPI spec (schemathesis):
valid and invalid requests, with a valid bearer token, must never get a 5xx, and the
answers must match the documented schemas."""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.raw import register

pytestmark = pytest.mark.opaque_envelopes

EXAMPLES_PER_MODE = 30
TIME_BUDGET_S = 100


@pytest.mark.slow
def test_no_server_errors_and_documented_answers(covey_server):
    covey_server.restart(env={"COVEY_RATE_REGISTER_BURST": "100000",
                              "COVEY_RATE_LOGIN_BURST": "100000",
                              "COVEY_RATE_SEND_BURST": "100000",
                              "COVEY_RATE_LOOKUP_BURST": "100000",
                              "COVEY_RATE_CONTACT_BURST": "100000"})
    alice = register(covey_server.url, "alice")
    headers = {"Authorization": f"Bearer {alice.token}"}
    schema = schemathesis.openapi.from_url(f"{covey_server.url}/openapi.json")
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 19
    tried = 0
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # Past the budget only the invalid variants are skipped: every operation
            # still gets its positive run (the API has grown to ~50 operations).
            if mode is GenerationMode.NEGATIVE and time.monotonic() - started > TIME_BUDGET_S:
                break

            @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                case.call_and_validate(base_url=covey_server.url,
                                       headers={**(case.headers or {}), **headers},
                                       checks=checks, timeout=30)

            try:
                run()
            except Unsatisfiable:
                # Operations without inputs have no invalid variant to generate.
                assert mode is GenerationMode.NEGATIVE, operation.label
            tried += 1
    assert tried >= len(operations)  # every operation got at least its positive run
    assert httpcheck(covey_server.url)


def httpcheck(url: str) -> bool:
    import httpx

    return httpx.get(f"{url}/healthz").status_code == 200
