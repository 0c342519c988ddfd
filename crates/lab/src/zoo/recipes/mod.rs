//! One file per daemon: how to configure and start it in the zoo's namespace, and what it
//! is expected to be named.

mod alertmanager;
mod apache;
mod docker;
mod dovecot;
mod etcd;
mod exim;
mod influxdb;
mod jupyter;
mod memcached;
mod nginx;
mod node_exporter;
mod prometheus;
mod rabbitmq;
mod redis;
mod sshd;
mod telnet;
mod tomcat;
mod vnc;
mod vsftpd;
mod xrdp;

pub(super) use alertmanager::alertmanager;
pub(super) use apache::apache;
pub(super) use docker::docker;
pub(super) use dovecot::dovecot;
pub(super) use etcd::etcd;
pub(super) use exim::exim;
pub(super) use influxdb::influxdb;
pub(super) use jupyter::jupyter;
pub(super) use memcached::memcached;
pub(super) use nginx::nginx;
pub(super) use node_exporter::node_exporter;
pub(super) use prometheus::prometheus;
pub(super) use rabbitmq::rabbitmq;
pub(super) use redis::redis;
pub(super) use sshd::sshd;
pub(super) use telnet::telnet;
pub(super) use tomcat::tomcat;
pub(super) use vnc::vnc;
pub(super) use vsftpd::vsftpd;
pub(super) use xrdp::xrdp;
