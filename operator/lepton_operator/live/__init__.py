"""Live figures of a served model, read from Prometheus.

``queries`` builds the PromQL (pure), ``sample`` holds what a read returns (pure, so the
planner may import it), and ``prometheus`` is the adapter that sends the queries. This
package file imports none of them, so importing the pure modules never pulls in the
HTTP client.
"""
