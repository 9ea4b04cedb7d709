//! Values as Kubernetes accepts them, shared by the operator, the API and the simulator:
//! resource quantities, parsed exactly, and object names.

pub mod name;
pub mod quantity;
