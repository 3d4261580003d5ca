// Types of ./time-skipping-server.js (plain JavaScript so CI and developers run it without a build).
export declare const ARTIFACT: { groupId: string; artifactId: string; version: string };
/** Installs the time-skipping test server unless it is there; resolves to its wrapper script. */
export declare function installTestServer(progress?: (line: string) => void): Promise<string>;
export declare function isInstalled(): boolean;
/** The wrapper script `TestWorkflowEnvironment.createTimeSkipping` starts as an existing-path executable. */
export declare function testServerExecutable(): string;
export declare function toolsDir(): string;
