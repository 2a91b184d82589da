//! Hash maps for keys the daemon looks up on every event or span (trace ids, connection keys,
//! process names): foldhash, several times cheaper than the standard SipHash, with a seed
//! chosen per process so that keys a remote peer picks cannot be aimed at one bucket.

pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
