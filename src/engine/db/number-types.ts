import pg from "pg";

// Counts and ids (bigint) come back from pg as strings; what people and scripts read (the
// CLI's output, the JSON API) has them as numbers, as long as they fit one exactly.
const INT8_OID = 20;

export const numberTypes = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === INT8_OID) {
      return (text: string) => {
        const value = Number(text);
        return Number.isSafeInteger(value) ? value : text;
      };
    }
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;
