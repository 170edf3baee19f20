"""lepton-activator: the request path of a LeptonModel scaled to zero.

While a model has no Ready Triton replica, the operator points the model's Service at
the activator (an extra EndpointSlice of the Service, the way Knative's activator sits
behind a revision's Service at zero). The activator holds each request in a bounded
queue with a timeout, tells the operator at once that demand arrived (an annotation on
the LeptonModel, which the operator watches), and forwards the held requests once a
replica is Ready, over Triton's HTTP and gRPC APIs alike. With Ready replicas the
operator removes that EndpointSlice: the activator leaves the data path.

Written here rather than taken from KEDA's HTTP add-on: its interceptor needs KEDA's
operator, its CRDs (HTTPScaledObject) and its scaler in the cluster, and routes by
Host header to a Service it does not own; here the operator already decides replicas,
so only the holding and the demand signal were missing (about 500 lines of asyncio on
aiohttp, which the operator image already carries through kopf, and a gRPC
pass-through on grpcio for Triton's gRPC API: ``grpcproxy``).
"""
