//! Sans-IO Raft.
