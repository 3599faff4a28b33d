export async function zoneLoss(o: object): Promise<import("./common").DrillReport> { void o; throw new Error("todo"); }
