// pino-roll ships no type declarations; this covers the options the server uses.
declare module "pino-roll" {
  interface PinoRollOptions {
    file: string | (() => string);
    size?: number | string;
    frequency?: number | string;
    extension?: string;
    mkdir?: boolean;
    symlink?: boolean;
    limit?: { count?: number; removeOtherLogFiles?: boolean };
  }
  /** A SonicBoom stream: fd is -1 until its file is open ('ready'); open failures are 'error' events. */
  interface RollingStream extends NodeJS.EventEmitter {
    readonly fd: number;
    write(chunk: string): boolean;
    end(): void;
  }
  export default function pinoRoll(options: PinoRollOptions): Promise<RollingStream>;
}
