"""Host librdkafka's mock Kafka cluster in this process: ``python kafka_mock.py``.

Prints the cluster's bootstrap address, then reads commands from stdin until it closes:
``topic NAME PARTITIONS`` creates a topic (answers ``ok``). The mock cluster is a real TCP
Kafka-protocol server (in memory) that lives as long as this process.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path


def _librdkafka() -> ctypes.CDLL:
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    [path] = sorted(libs.glob("librdkafka*.so*"))
    lib = ctypes.CDLL(str(path))
    lib.rd_kafka_conf_new.restype = ctypes.c_void_p
    lib.rd_kafka_new.restype = ctypes.c_void_p
    lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
    lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_topic_create.restype = ctypes.c_int
    lib.rd_kafka_mock_topic_create.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    return lib


def main() -> None:
    lib = _librdkafka()
    error = ctypes.create_string_buffer(512)
    handle = lib.rd_kafka_new(1, lib.rd_kafka_conf_new(), error, len(error))  # a consumer handle
    if not handle:
        raise SystemExit(f"rd_kafka_new: {error.value.decode()}")
    cluster = lib.rd_kafka_mock_cluster_new(handle, 1)
    print(lib.rd_kafka_mock_cluster_bootstraps(cluster).decode(), flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "topic":
            code = lib.rd_kafka_mock_topic_create(cluster, args[0].encode(), int(args[1]), 1)
            print("ok" if code == 0 else f"error {code}", flush=True)
        else:
            print(f"error unknown command {command}", flush=True)


if __name__ == "__main__":
    main()
