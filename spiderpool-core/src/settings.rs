//! Spiderpool's cluster settings: the ConfigMap `spiderpool-conf`, key `conf.yml`.
//!
//! The controller, the CNI plugin's Kubernetes mode and `spiderpoolctl`'s emulation read the
//! same switches from it: the families, the StatefulSet and KubeVirt static IPs, SpiderSubnet
//! and auto-pools, and the auto-pool defaults. Absent keys keep Spiderpool's defaults.

use serde_json::Value;

use crate::autopool::AutoPoolConfig;
use crate::request::IpamConfig;
use crate::Error;

/// The ConfigMap's name.
pub const CONFIGMAP_NAME: &str = "spiderpool-conf";
/// The key of its settings document.
pub const CONFIGMAP_KEY: &str = "conf.yml";

/// Settings read from `spiderpool-conf`.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Allocation switches.
    pub ipam: IpamConfig,
    /// Auto-pool defaults.
    pub autopool: AutoPoolConfig,
}

impl Settings {
    /// Reads the `conf.yml` document (`source` names it in errors).
    pub fn from_conf_yml(source: &str, text: &str) -> Result<Settings, Error> {
        let mut s = Settings::default();
        let conf: Value = yaml_serde::from_str(text).map_err(|e| Error::Decode {
            source_name: source.to_string(),
            document: 1,
            message: e.to_string(),
        })?;
        if conf.is_null() {
            return Ok(s);
        }
        if !conf.is_object() {
            return Err(Error::Decode {
                source_name: source.to_string(),
                document: 1,
                message: "the settings are not a mapping".into(),
            });
        }
        let flag = |k: &str, default: bool| conf.get(k).and_then(Value::as_bool).unwrap_or(default);
        s.ipam.enable_ipv4 = flag("enableIPv4", true);
        s.ipam.enable_ipv6 = flag("enableIPv6", true);
        s.ipam.enable_statefulset = flag("enableStatefulSet", true);
        s.ipam.enable_kubevirt_static_ip = flag("enableKubevirtStaticIP", true);
        s.ipam.enable_spider_subnet = flag("enableSpiderSubnet", true);
        s.ipam.enable_auto_pool = flag("enableAutoPoolForApplication", true);
        // Both spellings: the chart's and the code's (spec/README.md decision 4).
        for key in [
            "clusterSubnetDefaultFlexibleIPNumber",
            "clusterSubnetAutoPoolDefaultRedundantIPNumber",
        ] {
            if let Some(n) = conf.get(key).and_then(Value::as_u64) {
                s.autopool.default_flexible_ip_number = n;
            }
        }
        let text = |k: &str| conf.get(k).and_then(Value::as_str).map(str::to_string);
        s.autopool.default_ipv4_subnet = text("clusterDefaultIPv4Subnet");
        s.autopool.default_ipv6_subnet = text("clusterDefaultIPv6Subnet");
        Ok(s)
    }

    /// Reads the settings from a ConfigMap object (JSON); one without `data."conf.yml"` gives
    /// the defaults.
    pub fn from_configmap(configmap: &Value) -> Result<Settings, Error> {
        match configmap
            .pointer("/data")
            .and_then(|d| d.get(CONFIGMAP_KEY))
            .and_then(Value::as_str)
        {
            Some(text) => {
                Settings::from_conf_yml(&format!("ConfigMap {CONFIGMAP_NAME} data.conf.yml"), text)
            }
            None => Ok(Settings::default()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn switches_and_both_spellings_of_the_flexible_number() {
        let s = Settings::from_conf_yml(
            "t",
            "enableIPv6: false\nenableStatefulSet: false\nclusterSubnetDefaultFlexibleIPNumber: 3\n",
        )
        .unwrap();
        assert!(s.ipam.enable_ipv4 && !s.ipam.enable_ipv6 && !s.ipam.enable_statefulset);
        assert_eq!(s.autopool.default_flexible_ip_number, 3);
        let s = Settings::from_conf_yml("t", "clusterSubnetAutoPoolDefaultRedundantIPNumber: 2")
            .unwrap();
        assert_eq!(s.autopool.default_flexible_ip_number, 2);
    }

    #[test]
    fn bad_documents_are_named_errors() {
        let e = Settings::from_conf_yml("cm", "enableIPv4: [").unwrap_err();
        assert!(e.to_string().starts_with("cm: document 1:"), "{e}");
        let e = Settings::from_conf_yml("cm", "- a list").unwrap_err();
        assert!(e.to_string().contains("not a mapping"), "{e}");
    }
}
