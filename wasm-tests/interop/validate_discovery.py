"""Validates l402-edge's discovery documents with validators nobody on this project wrote.

Usage: validate_discovery.py SCHEMA MANIFEST OPENAPI
  SCHEMA    docs/schemas/l402-manifest.schema.json (JSON Schema 2020-12)
  MANIFEST  a /.well-known/l402.json the edge served
  OPENAPI   the OpenAPI document the edge served (validated as OpenAPI 3.1)
Prints "ok" or the first error, and exits non-zero on an error.
"""

import json
import sys

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError


def main() -> int:
    schema_path, manifest_path, openapi_path = sys.argv[1:4]
    with open(schema_path) as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    with open(manifest_path) as f:
        manifest = json.load(f)
    errors = sorted(Draft202012Validator(schema).iter_errors(manifest), key=str)
    if errors:
        print(f"manifest: {errors[0].message} at {list(errors[0].path)}")
        return 1
    with open(openapi_path) as f:
        document = json.load(f)
    if not str(document.get("openapi", "")).startswith("3.1"):
        print("openapi: not a 3.1 document")
        return 1
    try:
        validate(document)
    except OpenAPIValidationError as e:
        print(f"openapi: {e}")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
