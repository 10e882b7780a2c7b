//! Results and their bytes: the content store, the metadata database, immutable and
//! mutable refs with leases, lazy refs backed by remote blobs and the descriptor handlers
//! that unlazy them, layer blobs, the registry client, and garbage collection.
//!
//! Must not know about build graphs or Dockerfiles: it is asked for refs by digest and
//! descriptor, and answers with refs or a typed "needs remote providers" error.
