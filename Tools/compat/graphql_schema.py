"""Writes the manager's GraphQL schema as SDL, fetched by a signed introspection query."""
import sys

import graphql
import requests

from schemathesis_hooks import HangarSignature

endpoint, out = sys.argv[1], sys.argv[2]
reply = requests.post(endpoint, json={"query": graphql.get_introspection_query(), "variables": {}}, auth=HangarSignature(), timeout=30)
reply.raise_for_status()
body = reply.json()
if body.get("errors"):
    sys.exit(f"introspection failed: {body['errors']}")
with open(out, "w") as f:
    f.write(graphql.print_schema(graphql.build_client_schema(body["data"])))
