"""The lab's xDS control plane: a stand-in for the cluster's, speaking real ADS.

As the lab's DNS server stands in for cluster DNS, this package stands in for a Kubernetes xDS
control plane such as wongnai/xds: state-of-the-world ADS over gRPC (Envoy's ``xds-protos``),
serving LDS, RDS, CDS and EDS to proxyless gRPC clients and to Envoy, fed by the same zone file
the DNS server answers from. Modules, one job each:

- :mod:`.policies`  the load-balancing policies a Cluster can name;
- :mod:`.resources` the Listener, RouteConfiguration, Cluster and ClusterLoadAssignment of each
  service, named as a real control plane names them;
- :mod:`.stream`    the ADS stream state machine (versions, nonces, ACK, NACK, subscriptions),
  pure and without I/O;
- :mod:`.watch`     notices when the zone file changes;
- :mod:`.server`    the gRPC service and the process (``python -m hellolb_lab.xds``);
- :mod:`.bootstrap` the bootstrap a gRPC client or an Envoy needs to reach it;
- :mod:`.launch`    starts the control plane, servers and xDS clients as lab processes;
- :mod:`.bench`     time from publishing a server to its first call, xDS against DNS.
"""
