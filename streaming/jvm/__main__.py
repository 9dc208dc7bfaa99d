"""``python -m streaming.jvm``: compile the stream's Java functions ahead of their first use
(``make env`` and the platform's Docker image do) and print the jar's path."""

from streaming.jvm import functions_jar

print(functions_jar())
