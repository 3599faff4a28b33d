/**
 * The UserDataInput of one planned node, from the stack config and the values
 * only known after deploy. One function for the stack's node component and
 * `npm run render`, so what an operator reviews is what the node gets.
 * No `@pulumi/*` import.
 */
import type { StackConfig } from "../config";
import type { NodePlan } from "../plan/placement";
import type { UserDataInput } from "./contract";
import { backupHook } from "./backupHook";
import { ENGINE_FACTS } from "./engine";
import { metricsHook } from "./metricsHook";

export interface DeployedValues {
    /** Availability zone name of plan.zoneIndex. */
    az: string;
    /** EBS volume id of the node's data volume. */
    dataVolumeId: string;
    region: string;
    backupBucket?: string;
    /** KMS key the node's backup uploads are encrypted with (the cluster key). */
    backupKmsKeyArn?: string;
    /** Hook scripts besides the backup hook (metrics publisher ...). @default the metrics publisher (metricsHook.ts) */
    hooks?: UserDataInput["hooks"];
}

export function userDataInputFor(config: StackConfig, plan: NodePlan, deployed: DeployedValues): UserDataInput {
    return {
        // Only per-node stable inputs reach the user data: not the alarm e-mail (possibly a secret, no business of the node),
        // nor the rollout key (it names the node being rolled; every node's user data would change with it).
        config: { ...config, alarmEmail: undefined, rollout: undefined },
        node: { name: plan.name, shard: plan.shard, replica: plan.replica, az: deployed.az },
        privateIp: plan.privateIp,
        dataVolumeId: deployed.dataVolumeId,
        region: deployed.region,
        backupBucket: deployed.backupBucket,
        // The backup hook always (with backupSchedule off it removes the timer and keeps on-demand backups), then the others.
        hooks: [
            backupHook({ schedule: config.backupSchedule, engineService: ENGINE_FACTS[config.engine].service, bucket: deployed.backupBucket ?? "", kmsKeyArn: deployed.backupKmsKeyArn }),
            ...(deployed.hooks ?? [metricsHook({ config, node: { name: plan.name }, privateIp: plan.privateIp })]),
        ],
    };
}
