"""Reading ``/metrics`` as Prometheus does, for tests that watch a metric move."""

from collections import defaultdict

from django.test import Client as HttpClient
from prometheus_client.parser import text_string_to_metric_families

Samples = defaultdict[tuple[str, tuple[str, ...]], float]


def scrape() -> Samples:
    """Every sample of ``/metrics``, by name and label values (in label order);
    one not shown yet (a labelled counter before its first event) reads 0."""
    response = HttpClient().get("/metrics")
    assert response.status_code == 200, response.content
    samples: Samples = defaultdict(float)
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[sample.name, tuple(sample.labels.values())] = sample.value
    return samples
