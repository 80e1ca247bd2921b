"""Parses API responses with the response models a client of the miner template's API uses
(chainswarm aml-miner-template, `develoment` branch, packages/api/models.py: the field names and
types, restated here), as pydantic does by default (lax mode, extra fields ignored).

Reads JSON from stdin: {"ModelName": [response, ...], ...}; exits 1 naming every response
that does not parse.
"""
import json
import sys
from datetime import datetime
from typing import Dict, List

from pydantic import BaseModel, Field, ValidationError


class HealthResponse(BaseModel):
    status: str
    timestamp: datetime
    version: str
    database_connected: bool


class VersionResponse(BaseModel):
    api_version: str
    models: Dict[str, str]
    network: str
    github_url: str
    commit_hash: str


class DatesAvailableResponse(BaseModel):
    dates: List[str]
    total_count: int


class LatestDateResponse(BaseModel):
    latest_date: str
    processed_at: datetime


class AlertScore(BaseModel):
    alert_id: str
    score: float = Field(ge=0.0, le=1.0)


class AlertScoresMetadata(BaseModel):
    processed_at: datetime
    total_latency_ms: int
    avg_latency_ms: float


class AlertScoresResponse(BaseModel):
    processing_date: str
    model_version: str
    total_alerts: int
    scores: List[AlertScore]
    metadata: AlertScoresMetadata


class AlertRanking(BaseModel):
    alert_id: str
    rank: int
    score: float = Field(ge=0.0, le=1.0)


class AlertRankingsMetadata(BaseModel):
    processed_at: datetime


class AlertRankingsResponse(BaseModel):
    processing_date: str
    model_version: str
    total_alerts: int
    rankings: List[AlertRanking]
    metadata: AlertRankingsMetadata


class ClusterScore(BaseModel):
    cluster_id: str
    score: float = Field(ge=0.0, le=1.0)


class ClusterScoresMetadata(BaseModel):
    processed_at: datetime
    total_latency_ms: int
    avg_latency_ms: float


class ClusterScoresResponse(BaseModel):
    processing_date: str
    model_version: str
    total_clusters: int
    scores: List[ClusterScore]
    metadata: ClusterScoresMetadata


def main():
    failures = []
    checked = 0
    for name, responses in json.load(sys.stdin).items():
        model = globals()[name]
        for i, r in enumerate(responses):
            try:
                model.model_validate(r)
                checked += 1
            except ValidationError as e:
                failures.append(f"{name}[{i}]: {e}")
    print(f"{checked} responses parsed")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
