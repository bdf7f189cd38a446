use async_trait::async_trait;
use observe::observe;

#[async_trait]
trait Repository {
    async fn find(&self, id: u64) -> Result<String, String>;
    async fn count(&self) -> usize;
}

struct Db;

#[async_trait]
impl Repository for Db {
    #[observe(handler)]
    async fn find(&self, id: u64) -> Result<String, String> {
        if id == 0 {
            return Err("zero".to_owned());
        }
        let name = format!("order-{id}");
        Ok(name)
    }

    #[observe]
    async fn count(&self) -> usize {
        3
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let db: Box<dyn Repository + Send + Sync> = Box::new(Db);
        assert_eq!(db.find(1).await.unwrap(), "order-1");
        assert!(db.find(0).await.is_err());
        assert_eq!(db.count().await, 3);
    });
}
