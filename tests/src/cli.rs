//! Runs the real `openstack` CLI and openstacksdk (placeholder, being written).
