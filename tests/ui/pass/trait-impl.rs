use observe::observe;

trait Store {
    fn get(&self, key: u32) -> Option<u32>;
    fn put(&mut self, key: u32) -> Result<(), String>;
    async fn load(&self) -> u32;
}

struct Memory(Vec<u32>);

impl Store for Memory {
    #[observe(handler)]
    fn get(&self, key: u32) -> Option<u32> {
        self.0.iter().copied().find(|k| *k == key)
    }

    #[observe]
    fn put(&mut self, key: u32) -> Result<(), String> {
        if self.0.contains(&key) {
            return Err(format!("{key} exists"));
        }
        self.0.push(key);
        Ok(())
    }

    #[observe(task)]
    async fn load(&self) -> u32 {
        self.0.len() as u32
    }
}

fn main() {
    let mut store = Memory(vec![]);
    store.put(1).unwrap();
    assert!(store.put(1).is_err());
    assert_eq!(store.get(1), Some(1));
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(runtime.block_on(store.load()), 1);
}
