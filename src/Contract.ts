/**
 * The wire contract, protobuf package `cygnus.v1` (`proto/cygnus/v1/`): the generated
 * message types, their schemas (for `create`, `toBinary`, `fromBinary` of
 * `@bufbuild/protobuf`) and enums. Field numbers never change once released.
 *
 * @since 0.1.0
 */
export {
  type DataFileEntry,
  type DataFileEntryRecord,
  DataFileEntryRecordSchema,
  DataFileEntrySchema,
  type DataFileInfo,
  DataFileInfoSchema,
  DataFileVersion,
  DataFileVersionSchema,
  type LargeDataFileEntry,
  LargeDataFileEntrySchema,
  type StandardDataFileEntry,
  StandardDataFileEntrySchema
} from "./gen/cygnus/v1/data_file_entry_pb.js"
export {
  type DataFileV1,
  DataFileV1Schema,
  FileContent,
  FileContentSchema,
  FileFormat,
  FileFormatSchema
} from "./gen/cygnus/v1/data_file_pb.js"
