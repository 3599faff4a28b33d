/**
 * The Pulumi program: config -> environment lookups -> RedisCluster -> the
 * outputs the operations tool reads (`topology`, `loadBalancerDnsName`,
 * `backupBucketName`, `adminCredentials`, `nodeSettings` for `reconfigure`,
 * and `tlsCaCertificate` with TLS).
 */
import * as pulumi from "@pulumi/pulumi";
import { ConfigError } from "./components/config";
import { loadConfig } from "./components/loadConfig";
import { lookupEnvironment } from "./components/environment";
import { RedisCluster } from "./components/redisCluster";
import { networkModeProblems, previousNetwork } from "./components/networkMode";

export = async () => {
    try {
        const { config, alarmEmail } = loadConfig();
        const env = await lookupEnvironment(config);
        const refused = networkModeProblems(await previousNetwork(), config);
        if (refused.length > 0) throw new ConfigError(refused);
        const cluster = new RedisCluster(config.clusterName, { ...config, alarmEmail, environment: env });
        return cluster.outputs;
    } catch (e) {
        // A config mistake is the user's to fix: show the message, not a stack trace.
        if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
        throw e;
    }
};
