"""The durable store of `vortex serve`: one database (SQLite for one node, PostgreSQL shared by nodes).

    jobs.py      the job queue (`JobStore`, `open_store`): submit, claim under a lease, finish, reclaim
    channels.py  the channel table (`ChannelLeases`): what each channel should do, which node holds it
    lease.py     the one lease rule of both, by this node's monotonic clock (`Lease`), the job lease
                 keeper and the channel lease the runner's fence asks
    schema.py    the tables and their migrations; sqlite.py, postgres.py the two backends
"""
