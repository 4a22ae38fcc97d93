"""Gateway configuration kept by the backend, versioned, pushed to each gateway on its retained config topic.

``store`` (the table and its queries), ``publish`` (the MQTT message), ``router`` (the API), ``cli``
(``xiaoqu gateway config push|show|history``). The gateway validates and applies a document itself
(edge.remote_config); here it is only checked to be a YAML mapping.
"""
