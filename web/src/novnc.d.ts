/** The part of noVNC's RFB client the console uses (https://github.com/novnc/noVNC/blob/master/docs/API.md). */
declare module "@novnc/novnc" {
  export default class RFB extends EventTarget {
    constructor(
      target: HTMLElement,
      url: string,
      options?: { credentials?: { password?: string }; shared?: boolean },
    );
    scaleViewport: boolean;
    resizeSession: boolean;
    viewOnly: boolean;
    background: string;
    disconnect(): void;
    sendCredentials(credentials: { password: string }): void;
    focus(): void;
  }
}
