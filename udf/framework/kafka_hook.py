"""Kafka as an Airflow hook: where the archiver task finds the cluster.

1. The Airflow connection ``udf_kafka`` when it exists. Its extra is the librdkafka client
   configuration, as for Airflow's Kafka provider, e.g.
   ``AIRFLOW_CONN_UDF_KAFKA='{"conn_type": "kafka", "extra": {"bootstrap.servers":
   "broker:9092", "security.protocol": "SASL_SSL", ...}}'``; without ``bootstrap.servers``
   the connection's host and port are used. ``group.id`` sets the consumer group.
2. Else ``$UDF_KAFKA_BOOTSTRAP`` (and the default group).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from udf.archive.kafka_client import KafkaSettings

log = logging.getLogger(__name__)


class UdfKafkaHook(BaseHook):
    """Resolves the Kafka cluster of the ``udf_kafka`` connection (or the environment)."""

    conn_name_attr = "udf_kafka_conn_id"
    default_conn_name = "udf_kafka"
    conn_type = "kafka"
    hook_name = "UDF Kafka"

    def __init__(self, udf_kafka_conn_id: str = default_conn_name):
        super().__init__()
        self.udf_kafka_conn_id = udf_kafka_conn_id

    def get_settings(self) -> KafkaSettings:
        from udf.archive.kafka_client import DEFAULT_GROUP, KafkaSettings
        from udf.errors import InputError

        config = self._config_from_connection()
        if config is None:
            bootstrap = os.environ.get("UDF_KAFKA_BOOTSTRAP")
            if not bootstrap:
                raise InputError(
                    f"no Kafka configured: add the Airflow connection {self.udf_kafka_conn_id!r} "
                    "(extra: librdkafka settings with bootstrap.servers) or set $UDF_KAFKA_BOOTSTRAP"
                )
            return KafkaSettings(bootstrap)
        bootstrap = config.pop("bootstrap.servers", None)
        if not bootstrap:
            raise InputError(
                f"the Airflow connection {self.udf_kafka_conn_id!r} names no bootstrap.servers or host"
            )
        return KafkaSettings(
            str(bootstrap),
            str(config.pop("group.id", DEFAULT_GROUP)),
            {key: str(value) for key, value in config.items()},
        )

    def _config_from_connection(self) -> dict[str, Any] | None:
        try:
            conn = self.get_connection(self.udf_kafka_conn_id)
        except Exception as exc:  # missing connection: AirflowNotFoundException (SDK or core)
            if type(exc).__name__ != "AirflowNotFoundException":
                raise
            log.debug("no connection %r; using the environment", self.udf_kafka_conn_id)
            return None
        config = dict(conn.extra_dejson or {})
        if "bootstrap.servers" not in config and conn.host:
            config["bootstrap.servers"] = f"{conn.host}:{conn.port}" if conn.port else conn.host
        return config
