/**
 * Checks of CloudWatch embedded-metric-format documents against the format's
 * published schema and rules, for the unit and the node-publisher tests.
 */
import Ajv from "ajv";
import type { EmfDocument } from "../../scripts/plan/metricsFormat";

/**
 * The JSON schema AWS publishes with the format, copied from "Specification: Embedded
 * metric format", section "Embedded metric format example and JSON schema"
 * (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html;
 * also awsdocs/amazon-cloudwatch-user-guide doc_source/CloudWatch_Embedded_Metric_Format_Specification.md).
 * `$id`, `title` and `examples` are left out; the constraints are as published.
 */
export const EMF_SCHEMA = {
    type: "object",
    required: ["_aws"],
    properties: {
        _aws: {
            type: "object",
            required: ["Timestamp", "CloudWatchMetrics"],
            properties: {
                Timestamp: { type: "integer" },
                CloudWatchMetrics: {
                    type: "array",
                    items: {
                        type: "object",
                        required: ["Namespace", "Dimensions", "Metrics"],
                        properties: {
                            Namespace: { type: "string", pattern: "^(.*)$", minLength: 1, maxLength: 255 },
                            Dimensions: {
                                type: "array",
                                minItems: 1,
                                items: {
                                    type: "array",
                                    minItems: 0,
                                    maxItems: 9,
                                    items: { type: "string", pattern: "^(.*)$", minLength: 1, maxLength: 255 },
                                },
                            },
                            Metrics: {
                                type: "array",
                                items: {
                                    type: "object",
                                    required: ["Name"],
                                    properties: {
                                        Name: { type: "string", pattern: "^(.*)$", minLength: 1, maxLength: 255 },
                                        Unit: {
                                            type: "string",
                                            pattern: "^(Seconds|Microseconds|Milliseconds|Bytes|Kilobytes|Megabytes|Gigabytes|Terabytes|Bits|Kilobits|Megabits|Gigabits|Terabits|Percent|Count|Bytes\\/Second|Kilobytes\\/Second|Megabytes\\/Second|Gigabytes\\/Second|Terabytes\\/Second|Bits\\/Second|Kilobits\\/Second|Megabits\\/Second|Gigabits\\/Second|Terabits\\/Second|Count\\/Second|None)$",
                                        },
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
};

/**
 * The rules of the same page that a schema cannot express (sections "MetricDirective
 * object", "DimensionSet array", "Target members"): every referenced member is on the
 * root node, not nested; dimension targets are strings, metric targets numbers; at
 * most 100 MetricDefinitions per directive. Plus CloudWatch's own: one timestamp in ms.
 */
export function emfRuleViolations(doc: EmfDocument): string[] {
    const bad: string[] = [];
    for (const d of doc._aws.CloudWatchMetrics) {
        if (d.Metrics.length > 100) bad.push(`${d.Metrics.length} metrics in one directive`);
        for (const set of d.Dimensions) for (const k of set) if (typeof doc[k] !== "string" || !(doc[k] as string).length) bad.push(`dimension ${k} is not a string member of the root`);
        for (const m of d.Metrics) if (typeof doc[m.Name] !== "number" || !Number.isFinite(doc[m.Name] as number)) bad.push(`metric ${m.Name} is not a number on the root`);
    }
    if (!(doc._aws.Timestamp > 1.5e12 && doc._aws.Timestamp < 1e13)) bad.push(`timestamp ${doc._aws.Timestamp} is not in milliseconds`);
    return bad;
}

const validator = new Ajv({ allErrors: true, strict: false }).compile(EMF_SCHEMA);

/** Schema errors (empty when valid). */
export function validateEmf(doc: unknown): string[] {
    return validator(doc) ? [] : (validator.errors ?? []).map((e) => `${e.instancePath} ${e.message}`);
}
