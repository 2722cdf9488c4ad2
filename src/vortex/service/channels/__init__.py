"""The channels of `vortex serve`, each on one node at a time through a lease in the store.

    host.py         `ChannelHost`: starts, resumes, takes over and stops this node's channels
    hosted.py       `HostedChannel`: one channel this node runs
    lease.py        `ChannelKeeper`: renews this node's leases, notices losses, takes orphans
    status.py       what GET /v1/channels/{name} shows, on any node
    forward.py      a request for a channel another node runs, handed to that node
    hls_serving.py  the LL-HLS playlist and media responses (blocking playlist reload)
"""
