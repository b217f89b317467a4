//! Typed indices for the engine's tables, so a GPU index can never be passed as an instance.

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u32);

        impl $name {
            /// The index as a `usize`, for table look-ups.
            #[inline]
            pub fn ix(self) -> usize {
                self.0 as usize
            }
        }
    };
}

id_type!(
    /// A function of the scenario (after `count` expansion), in scenario order.
    FuncId
);
id_type!(
    /// A GPU of the cluster, numbered node by node.
    GpuId
);
id_type!(
    /// A slot of the instance table (reused after an instance is reclaimed).
    InstId
);
id_type!(
    /// A slot of the in-flight invocation table (reused after the invocation ends).
    InvId
);

impl FuncId {
    /// No function: the `func` of a worker instance, which serves any.
    pub const NONE: FuncId = FuncId(u32::MAX);
}
