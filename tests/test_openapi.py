"""The checked-in OpenAPI document is what the app generates, with one schema per loss."""

import json
from pathlib import Path

from jsonschema import Draft202012Validator

from service.cli import OPENAPI_PATH, openapi_json
from service.losses import REGISTRY

ROOT = Path(__file__).parent.parent


def test_checked_in_document_is_current() -> None:
    checked_in = (ROOT / OPENAPI_PATH).read_text()
    assert checked_in == openapi_json(), "openapi/ drifted: run `make openapi` and commit it"


def test_each_loss_has_its_own_request_schema() -> None:
    document = json.loads(openapi_json())
    schemas = document["components"]["schemas"]
    for name, spec in REGISTRY.items():
        operation = document["paths"][f"/v1/losses/{name}"]["post"]
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = schemas[ref.rsplit("/", 1)[-1]]
        assert schema["additionalProperties"] is False
        assert set(schema["required"]) == {t.name for t in spec.tensors}
        assert set(schema["properties"]) == set(spec.fields)


def test_the_worked_example_fits_its_schema() -> None:
    document = json.loads(openapi_json())
    schema = {
        "$ref": "#/components/schemas/CrossEntropyRequest",
        "components": document["components"],
    }
    example = {"input": [[1, 2, 3]], "target": [2], "grad": True}
    Draft202012Validator(schema).validate(example)
