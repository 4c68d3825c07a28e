"""OpenAPI 3.1 document of the ingest service, built from the pydantic models' JSON Schemas."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _err(desc: str) -> dict[str, Any]:
    return {"description": desc, "content": {"application/json": {"schema": _ERROR}}}


@lru_cache(maxsize=1)
def openapi_spec() -> dict[str, Any]:
    from pydantic import TypeAdapter

    from schemas import events, orders

    components: dict[str, Any] = {
        "Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {"type": "object", "required": ["code", "message", "details"],
                                     "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                                    "details": {"type": "array", "items": {"type": "object"}}}}},
        },
        "Accepted": {
            "type": "object", "required": ["accepted", "rejected"],
            "properties": {"accepted": {"type": "integer"},
                           "rejected": {"type": "array", "items": {
                               "type": "object", "properties": {"index": {"type": "integer"},
                                                                "error": {"type": "string"}}}}},
        },
    }
    batch = TypeAdapter(events.EventBatch).json_schema(ref_template="#/components/schemas/{model}")
    components.update(batch.pop("$defs", {}))
    components["EventBatch"] = batch
    order = TypeAdapter(orders.OrderWebhook).json_schema(ref_template="#/components/schemas/{model}")
    components.update(order.pop("$defs", {}))
    components["OrderWebhook"] = order
    common = {"401": _err("missing or bad key / signature"), "413": _err("body or batch too large"),
              "415": _err("not application/json"), "422": _err("invalid fields, each named with a reason"),
              "503": _err("overloaded or Kafka unavailable; honour Retry-After")}
    return {
        "openapi": "3.1.0",
        "info": {"title": "LiveLedger ingest", "version": "0.1.0",
                 "description": "Hot path: affiliate redirects, live-player events, order webhooks. "
                                "202 means durably in Kafka (acks=all)."},
        "paths": {
            "/l/{link_code}": {
                "get": {
                    "summary": "Affiliate redirect: 302 to the destination with ll_click, emits a click — except for "
                               "crawler / link-preview User-Agents, a repeat of the same client within 1 h (the first "
                               "ll_click again), or an inactive link or campaign (no ll_click); docs/ingest.md",
                    "parameters": [{"name": "link_code", "in": "path", "required": True, "schema": {"type": "string"}},
                                   {"name": "User-Agent", "in": "header", "schema": {"type": "string"}},
                                   {"name": "X-Forwarded-For", "in": "header", "schema": {"type": "string"},
                                    "description": "believed only from LIVELEDGER_TRUSTED_PROXIES"}],
                    "responses": {"302": {"description": "redirect; Set-Cookie ll_click when it counts"},
                                  "404": _err("unknown link"), "503": common["503"]}},
                "head": {
                    "summary": "Like GET, but never a click",
                    "parameters": [{"name": "link_code", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"302": {"description": "redirect without ll_click"}, "404": _err("unknown link")}},
            },
            "/v1/events": {"post": {
                "summary": "Batch of view / click / add_to_cart events (brand key), partial acceptance",
                "security": [{"bearer": []}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/EventBatch"}}}},
                "responses": {"202": {"description": "accepted", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Accepted"}}}},
                    "400": _err("malformed JSON"), "403": _err("another brand's key or stream"), **common}}},
            "/v1/webhooks/orders": {"post": {
                "summary": "Native order webhook, X-LiveLedger-Signature t=..,v1=HMAC-SHA256(\"t.body\")",
                "parameters": [{"name": "X-LiveLedger-Signature", "in": "header", "required": True,
                                "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/OrderWebhook"}}}},
                "responses": {"202": {"description": "accepted"}, "400": _err("malformed JSON"), **common}}},
            "/v1/webhooks/shopify/{brand_id}": {"post": {
                "summary": "Shopify webhooks as Shopify sends them: orders/create, orders/cancelled, refunds/create "
                           "are booked; test orders and every other topic are 200 and ignored",
                "parameters": [
                    {"name": "brand_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "X-Shopify-Hmac-Sha256", "in": "header", "required": True, "schema": {"type": "string"}},
                    {"name": "X-Shopify-Topic", "in": "header", "required": True,
                     "schema": {"type": "string", "examples": ["orders/create", "orders/cancelled", "refunds/create"]}},
                    {"name": "X-Shopify-Webhook-Id", "in": "header", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"202": {"description": "accepted"},
                              "200": {"description": "acknowledged and ignored (test order, other topic, no revenue)"},
                              "400": _err("malformed JSON"), **common}}},
            "/healthz": {"get": {"summary": "liveness", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "readiness: Kafka and Redis answer",
                                "responses": {"200": {"description": "ready"},
                                              "503": _err("not_ready: each dependency down named")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (text format)",
                                 "responses": {"200": {"description": "text/plain; version=0.0.4"}}}},
        },
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
