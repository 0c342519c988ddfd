//! One file per daemon: how to configure and start it in the zoo's namespace, and what it
//! is expected to be named.

mod apache;
mod dovecot;
mod exim;
mod influxdb;
mod jupyter;
mod memcached;
mod nginx;
mod node_exporter;
mod redis;
mod sshd;
mod telnet;
mod vnc;
mod vsftpd;
mod xrdp;

pub(super) use apache::apache;
pub(super) use dovecot::dovecot;
pub(super) use exim::exim;
pub(super) use influxdb::influxdb;
pub(super) use jupyter::jupyter;
pub(super) use memcached::memcached;
pub(super) use nginx::nginx;
pub(super) use node_exporter::node_exporter;
pub(super) use redis::redis;
pub(super) use sshd::sshd;
pub(super) use telnet::telnet;
pub(super) use vnc::vnc;
pub(super) use vsftpd::vsftpd;
pub(super) use xrdp::xrdp;
