import packageJson from "../../package.json" with { type: "json" }

/** The version both DroneEngage servers report (health, INFO): the package's. */
export const droneEngageVersion: string = packageJson.version
